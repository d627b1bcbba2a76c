"""What a study found: the trials table, the best config as a dcloop.yaml fragment, the HTML report
with the optimization history and parameter importances."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dcloop.atomic import write_text
from dcloop.errors import DcloopError
from dcloop.optimize import _study

if TYPE_CHECKING:
    import optuna

    from dcloop.config import TuneConfig
    from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
TRIAL_COLUMNS = ["trial", "state", "value", "epochs", "run", "params"]


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a study: budget and counts, the best trial and where its config and report are."""

    study: str
    storage: str
    total: int
    complete: int
    pruned: int
    failed: int
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_run_id: str | None
    default_value: float | None
    metric: str
    best_config_path: Path
    report_path: Path
    trials: list[dict[str, Any]]


def summarize(workspace: Workspace, name: str, url: str, cfg: TuneConfig) -> TuneResult:
    """Read the study back, write tune-best.yaml and the report, and return the result."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=name, storage=_study.open_storage(url, cfg.heartbeat_s))
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(_study.SURPLUS_ATTR)]
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    if not finished:
        raise DcloopError(
            f"Study {name!r} has no completed trial yet; see `dcloop runs list` for failed trials."
        )
    best = study.best_trial
    defaults = [t.value for t in finished if t.user_attrs.get("defaults")]
    counts = _study.counts(study)
    folder = workspace.reports_dir / name
    config_path = _write_best(folder / "tune-best.yaml", workspace, study, best, cfg)
    rows = [trial_row(t) for t in trials]
    result = TuneResult(
        study=name,
        storage=_study.redact(url),
        total=cfg.trials,
        complete=counts.complete,
        pruned=counts.pruned,
        failed=counts.failed,
        best_value=float(best.value or 0.0),
        best_params=dict(best.params),
        best_trial=best.number,
        best_run_id=best.user_attrs.get("run_id"),
        default_value=float(defaults[0]) if defaults and defaults[0] is not None else None,
        metric=cfg.metric,
        best_config_path=config_path,
        report_path=folder / "tune.html",
        trials=rows,
    )
    _write_report(result, study, trials)
    return result


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "epochs": len(trial.intermediate_values),
        "run": (trial.user_attrs.get("run_id") or "")[:12],
        "params": dict(trial.params),
        "defaults": bool(trial.user_attrs.get("defaults")),
    }


def _write_best(path: Path, workspace: Workspace, study: optuna.Study, best: Any, cfg: TuneConfig) -> Path:
    from dcloop.optimize._space import apply_params, recipe_changes

    base = workspace.config.train
    changes = recipe_changes(base, apply_params(base, best.params))
    header = (
        f"# Best of study {study.study_name!r}: trial {best.number}, {cfg.metric} = {best.value:.4f} "
        f"after {cfg.epochs} epochs.\n# Merge into dcloop.yaml (these train fields differ from it).\n"
    )
    return write_text(path, header + yaml.safe_dump({"train": changes}, sort_keys=False))


def _write_report(result: TuneResult, study: optuna.Study, trials: list[Any]) -> None:
    from dcloop.report import Section, write_report

    summary = Section("Summary").table(
        [
            "study",
            "storage",
            "budget",
            "complete",
            "pruned",
            "failed",
            "best trial",
            f"best {result.metric}",
            "defaults",
        ],
        [
            [
                result.study,
                result.storage,
                result.total,
                result.complete,
                result.pruned,
                result.failed,
                result.best_trial,
                round(result.best_value, 4),
                "" if result.default_value is None else round(result.default_value, 4),
            ]
        ],
    )
    summary.table(["best parameter", "value"], [[k, v] for k, v in result.best_params.items()])
    summary.link(f"config fragment with them: {result.best_config_path.name}", result.best_config_path)
    history = Section("Optimization history").figure(_history(trials, result.metric, study), "history")
    importance = Section("Parameter importance")
    try:
        importance.figure(_importance(study), "importance")
    except (ValueError, RuntimeError) as exc:
        importance.text(f"Not available yet: {exc}", css="muted")
    table = Section("Trials").table(
        TRIAL_COLUMNS,
        [[r["trial"], r["state"], r["value"], r["epochs"], r["run"], r["params"]] for r in result.trials],
    )
    write_report(result.report_path, f"dcloop tune: {result.study}", [summary, history, importance, table])


def _history(trials: list[Any], metric: str, study: optuna.Study) -> Any:
    from dcloop.report import new_figure

    fig, ax = new_figure(7, 4)
    maximize = study.direction.name == "MAXIMIZE"
    best: list[tuple[int, float]] = []
    for trial in trials:
        values = list(trial.intermediate_values.values())
        value = trial.value if trial.value is not None else (values[-1] if values else None)
        if value is None:
            continue
        color = {"COMPLETE": "C0", "PRUNED": "0.6"}.get(trial.state.name, "C3")
        ax.scatter([trial.number], [value], color=color, s=25)
        if trial.state.name == "COMPLETE":
            previous = best[-1][1] if best else value
            best.append((trial.number, max(previous, value) if maximize else min(previous, value)))
    if best:
        ax.step([b[0] for b in best], [b[1] for b in best], where="post", color="C1", label="best so far")
        ax.legend()
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, never 0.5
    ax.set_xlabel("trial (grey: pruned, red: failed)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return fig


def _importance(study: optuna.Study) -> Any:
    import optuna

    from dcloop.report import new_figure

    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 4:
        raise ValueError("parameter importance needs at least 4 completed trials")
    scores = optuna.importance.get_param_importances(study)
    fig, ax = new_figure(6, 3)
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names], color="C0")
    ax.set_xlabel("importance (fANOVA, share of variance)")
    return fig
