"""The steps of a loop turn, in one table: each is a function of the turn's context that returns its
typed output. Outputs are frozen dataclasses of JSON values (ids, refs, numbers), recorded with the
step so a resumed turn reads them back; a field marked ``in_process`` (a monitor or retrain result
object) lives only in the process that ran the step, for the turn report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dcloop.errors import DcloopError
from dcloop.store import datasets as store_datasets
from dcloop.workspace import Workspace

if TYPE_CHECKING:
    from dcloop.feedback import MonitorResult, RetrainResult

log = logging.getLogger(__name__)
T = TypeVar("T")
Traffic = Callable[[Workspace, str], dict[str, Any]]
"""Called by the feedback step with the served model ref; sends traffic and labels (the demo does)."""
IN_PROCESS = {"in_process": True}  # field metadata: not recorded, not read back on resume


# -- what each step produces ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    dataset: str  # the version trained on: the source's newest descendant (feedback folded in)
    dataset_name: str
    source_version: str


@dataclass(frozen=True)
class Trained:
    run: str
    run_accuracy: float | None


@dataclass(frozen=True)
class Optimized:
    optimization: str
    variant: str  # the recommended variant
    variant_method: str
    optimization_report: str


@dataclass(frozen=True)
class Registered:
    model: str
    registered: str  # name@version
    version: int


@dataclass(frozen=True)
class Gated:
    gate_passed: bool
    gate_reasons: list[str]
    gate_note: str
    champion: str


@dataclass(frozen=True)
class Deployed:
    served: str


@dataclass(frozen=True)
class Fed:
    predictions: int
    labelled: int
    traffic: dict[str, Any]


@dataclass(frozen=True)
class Monitored:
    alerts: list[str] = field(default_factory=list)
    monitor_report: str | None = None
    monitor_note: str | None = None  # why monitoring was skipped
    result: MonitorResult | None = field(default=None, metadata=IN_PROCESS)

    @property
    def skipped(self) -> bool:
        return self.monitor_note is not None


@dataclass(frozen=True)
class Retrained:
    challenger: str | None = None
    retrain_promoted: bool = False
    retrain_reasons: list[str] = field(default_factory=list)
    retrain_dataset: str | None = None
    retrain_run: str | None = None
    champion_after: str | None = None
    retrain_note: str | None = None  # why retraining was skipped
    result: RetrainResult | None = field(default=None, metadata=IN_PROCESS)

    @property
    def skipped(self) -> bool:
        return self.retrain_note is not None


def recorded(output: Any) -> dict[str, Any]:
    """A step output as the JSON object recorded with the step."""
    return {
        f.name: getattr(output, f.name)
        for f in dataclasses.fields(output)
        if not f.metadata.get("in_process")
    }


def read_back(kind: type[T], outputs: dict[str, Any]) -> T | None:
    """A recorded output as ``kind``; None when the record lacks one of its fields (the step reruns)."""
    names = {f.name for f in dataclasses.fields(kind) if not f.metadata.get("in_process")}  # type: ignore[arg-type]
    try:
        return kind(**{k: v for k, v in outputs.items() if k in names})
    except TypeError:
        return None


def status(output: Any) -> str:
    return "skipped" if getattr(output, "skipped", False) else "finished"


# -- the context every step gets ------------------------------------------------------------------


@dataclass
class Context:
    """One turn as its steps see it: the workspace, the turn number, the traffic hook, and the outputs
    of the steps before (``ctx[Trained].run``)."""

    ws: Workspace
    turn: int
    traffic: Traffic | None = None
    done: dict[type, Any] = field(default_factory=dict)

    def __getitem__(self, kind: type[T]) -> T:
        output: T = self.done[kind]
        return output


# -- the steps ----------------------------------------------------------------------------------------


def _prepare(ctx: Context) -> Prepared:
    """Prepare the source again, then train on its newest descendant (feedback folded in), if any."""
    from dcloop.data import import_source, prepare_dataset

    ws, cfg = ctx.ws, ctx.ws.config.loop
    record = import_source(ws, cfg.source, classes=cfg.classes) if cfg.source else prepare_dataset(ws)
    newest = _newest_descendant(ws, record.id)
    return Prepared(dataset=newest.id, dataset_name=newest.name, source_version=record.id)


def _newest_descendant(ws: Workspace, version_id: str) -> Any:
    versions = store_datasets.list_datasets(ws.store)
    parents = {v.id: v.parent_id for v in versions}
    for candidate in reversed(versions):  # newest first
        node: str | None = candidate.id
        while node is not None:
            if node == version_id:
                return candidate
            node = parents.get(node)
    return store_datasets.get_dataset(ws.store, version_id)


def _train(ctx: Context) -> Trained:
    """Train the workspace recipe; an interrupted run of this turn resumes from its checkpoint."""
    from dcloop.feedback import train_challenger

    run = train_challenger(ctx.ws, ctx.ws.config.train, ctx[Prepared].dataset, name=f"loop-turn-{ctx.turn}")
    return Trained(run=run.id, run_accuracy=run.metrics.get("accuracy"))


def _optimize(ctx: Context) -> Optimized:
    from dcloop.feedback import optimize_challenger

    result = optimize_challenger(ctx.ws, ctx[Trained].run)
    chosen = result.recommended
    return Optimized(
        optimization=result.id,
        variant=chosen.id,
        variant_method=chosen.method,
        optimization_report=str(result.report_path),
    )


def _register(ctx: Context) -> Registered:
    """Register the recommended variant as the challenger (once: a rerun finds the version made)."""
    from dcloop.deploy._registry import resolve_model_name
    from dcloop.errors import ConfigError, NotFoundError
    from dcloop.feedback import register_challenger

    # the model the controller watches and leases (loop.model, else the one registered); a new one
    # named after the data set when none is registered yet, or several and loop.model names none
    model = ctx.ws.config.loop.model
    if not model:
        try:
            model = resolve_model_name(ctx.ws)
        except (NotFoundError, ConfigError):
            model = ctx[Prepared].dataset_name
    version = register_challenger(ctx.ws, model, ctx[Optimized].variant)
    return Registered(model=model, registered=version.ref, version=version.version)


def _gate(ctx: Context) -> Gated:
    from dcloop.feedback import gate_challenger

    registered = ctx[Registered]
    verdict = gate_challenger(ctx.ws, registered.model, registered.version, f"loop turn {ctx.turn}")
    return Gated(
        gate_passed=verdict.passed,
        gate_reasons=verdict.reasons,
        gate_note=verdict.note,
        champion=verdict.champion,
    )


def _deploy(ctx: Context) -> Deployed:
    """Check the champion loads and is ready in the real server app (servers follow the alias)."""
    from dcloop.deploy import create_app, in_process_client

    model = ctx[Registered].model
    ref = f"{model}@champion"
    with in_process_client(create_app(ctx.ws, ref)) as client:
        ready = client.get(f"/v2/models/{model}/ready")
    if ready.status_code != 200:
        raise DcloopError(
            f"The server cannot serve {ref}: /v2/models/{model}/ready answered {ready.status_code}."
        )
    return Deployed(served=ctx[Gated].champion)


def _feedback(ctx: Context) -> Fed:
    """Count the predictions and labels gathered so far (``traffic`` first sends some, in the demo)."""
    from dcloop.feedback import prediction_stats

    model = ctx[Registered].model
    sent = ctx.traffic(ctx.ws, f"{model}@champion") if ctx.traffic is not None else {}
    stats = prediction_stats(ctx.ws.store, model_name=model)
    return Fed(predictions=stats["predictions"], labelled=stats["labelled"], traffic=sent)


def _monitor(ctx: Context) -> Monitored:
    from dcloop.feedback import monitor

    if not ctx[Fed].predictions:
        return Monitored(monitor_note="no predictions yet")
    report = ctx.ws.reports_dir / f"loop-turn-{ctx.turn}-monitor.html"
    result = monitor(ctx.ws, ctx[Registered].model, report=report)
    return Monitored(
        alerts=[a.message for a in result.alerts], monitor_report=str(result.report), result=result
    )


def _retrain(ctx: Context) -> Retrained:
    """Retrain on labelled feedback when there is enough of it; the gate decides on promotion."""
    from dcloop.feedback import NothingToRetrain, retrain

    try:
        result = retrain(ctx.ws, ctx[Registered].model, warm_start=ctx.ws.config.loop.warm_start)
    except NothingToRetrain as exc:
        return Retrained(retrain_note=str(exc))
    return Retrained(
        challenger=result.challenger,
        retrain_promoted=result.promoted,
        retrain_reasons=result.reasons,
        retrain_dataset=result.dataset,
        retrain_run=result.run_id,
        champion_after=result.challenger if result.promoted else result.champion,
        result=result,
    )


# -- the table: the turn runs these in order ----------------------------------------------------------


@dataclass(frozen=True)
class Step(Generic[T]):
    name: str
    run: Callable[[Context], T]
    output: type[T]


TABLE: tuple[Step[Any], ...] = (
    Step("prepare", _prepare, Prepared),
    Step("train", _train, Trained),
    Step("optimize", _optimize, Optimized),
    Step("register", _register, Registered),
    Step("gate", _gate, Gated),
    Step("deploy", _deploy, Deployed),
    Step("feedback", _feedback, Fed),
    Step("monitor", _monitor, Monitored),
    Step("retrain", _retrain, Retrained),
)
STEPS = tuple(step.name for step in TABLE)
