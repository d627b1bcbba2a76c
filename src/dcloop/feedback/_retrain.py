"""`retrain`: fold labelled feedback into a new data set version, train a challenger, gate it, promote it.

Read top to bottom: the champion and its data set version -> labelled predictions whose inputs are
still stored, less the ``gate.feedback_holdout`` share the gate judges on -> ``extend_dataset`` (same
cleaning rules; conflicts with the base are excluded and counted; the test split stays frozen) ->
train with the champion run's recipe, optionally warm-started from its weights, on the policy of the
``retrain`` config: a ``replay_share`` sample of the base's training examples and the new feedback
``feedback_weight`` times (the recipe augments each draw afresh) -> optimize it as a
loop turn does (`loop.optimize_methods`), register the recommended variant as the challenger and
promote it when it passes the gate: one `challenge`, the same functions a loop turn runs as steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from dcloop.config import RetrainConfig, TrainConfig
from dcloop.deploy._registry import resolve_model_name
from dcloop.errors import DataError, NotFoundError
from dcloop.store import runs as store_runs
from dcloop.store.predictions import labelled_examples
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


class NothingToRetrain(DataError):
    """Too little labelled feedback, or none that adds a new example: no challenger is trained."""


@dataclass(frozen=True)
class RetrainResult:
    """What one retraining did and why the challenger was (not) promoted."""

    model: str
    champion: str  # name@version before the decision
    challenger: str  # name@version registered by this retrain
    promoted: bool
    reasons: list[str]  # why the gate refused (empty when it passed)
    gate: dict[str, Any]  # the numbers the gate compared
    base_dataset: str
    dataset: str  # the new version (parent: base_dataset)
    offered: int  # labelled predictions with stored inputs
    added: int  # examples that survived cleaning into the new version
    conflicts: int  # feedback whose pixels already exist in the data with another label
    run_id: str
    warm_start: bool
    test_metrics: dict[str, Any] = field(default_factory=dict)
    train_examples: int = 0  # drawn per epoch: replayed base examples plus weighted feedback

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def retrain(
    ws: Workspace,
    model: str | None = None,
    *,
    warm_start: bool = False,
    since: datetime | None = None,
    min_labels: int | None = None,
) -> RetrainResult:
    """Retrain ``model`` (default: the only registered model) on its data plus labelled feedback.

    ``since`` limits the feedback to predictions made after it; fewer than ``min_labels`` (default
    `loop.retrain_min_labels`) labelled predictions with stored inputs is an error.
    """
    from dcloop.data import extend_dataset
    from dcloop.feedback._challenger import challenge

    name = resolve_model_name(ws, model)
    champion = _champion(ws, name)
    if champion.dataset_id is None:
        raise DataError(f"Champion {champion.ref} records no data set version to extend.")
    holdout = ws.config.gate.feedback_holdout  # kept for the gate to judge the challenger on
    images, labels = labelled_examples(
        ws.store, name, tuple(champion.input_shape), since, holdout=holdout, part="train"
    )
    needed = min_labels if min_labels is not None else ws.config.loop.retrain_min_labels
    if len(labels) < needed:
        raise _too_few(ws, name, since, tuple(champion.input_shape), len(labels), needed)
    origin = {"model": name, "champion": champion.ref, "predictions": len(labels), "since": since}
    extended = extend_dataset(ws, champion.dataset_id, images, labels, origin)
    added_report = extended.cleaning.get("added", {})
    added = int(extended.source.get("added", 0)) if extended.id != champion.dataset_id else 0
    if added == 0:
        raise NothingToRetrain(
            f"None of the {len(labels)} labelled predictions adds a new example to data set "
            f"{champion.dataset_id[:12]} (all duplicates or conflicts); nothing to retrain on."
        )
    policy = ws.config.retrain
    recipe = _challenger_recipe(_recipe(ws, champion.run_id), policy, warm_start)
    split = _challenger_split(ws, champion.dataset_id, extended.id, policy, recipe.seed)
    init_from = champion.run_id if warm_start else None
    made = challenge(
        ws,
        recipe,
        extended.id,
        model=name,
        run_name=f"{name}-retrain",
        kind="retrain",
        init_from=init_from,
        train_index=split,
    )
    run, verdict = made.run, made.verdict
    return RetrainResult(
        model=name,
        champion=champion.ref,
        challenger=made.version.ref,
        promoted=verdict.passed,
        reasons=verdict.reasons,
        gate=verdict.metrics,
        base_dataset=champion.dataset_id,
        dataset=extended.id,
        offered=len(labels),
        added=added,
        conflicts=int(added_report.get("counts", {}).get("conflict", 0)),
        run_id=run.id,
        warm_start=warm_start,
        test_metrics={k: run.metrics.get(k) for k in ("accuracy", "f1_macro", "n")},
        train_examples=len(split) if split is not None else _train_size(ws, extended.id),
    )


def _challenger_recipe(recipe: TrainConfig, policy: RetrainConfig, warm_start: bool) -> TrainConfig:
    """The champion's recipe with the policy's epochs; when fine-tuning, its lower learning rate and
    every step at full size (progressive resizing is for weights that start from scratch)."""
    update: dict[str, Any] = {"epochs": policy.epochs or recipe.epochs}
    if warm_start:
        update |= {"lr": recipe.lr * policy.lr_scale, "resize_share": 0.0}
    return recipe.model_copy(update=update)


def _challenger_split(
    ws: Workspace, base: str, extended: str, policy: RetrainConfig, seed: int
) -> np.ndarray | None:
    """The challenger's train split under ``policy`` (None: the extended version's own split)."""
    if policy.replay_share == 1.0 and policy.feedback_weight == 1:
        return None
    from dcloop.data import load_dataset

    first_new = len(load_dataset(ws, base).y)  # extend_dataset appends the feedback after the base
    train = load_dataset(ws, extended).splits["train"]
    return replay_and_weight(train, first_new, policy.replay_share, policy.feedback_weight, seed)


def replay_and_weight(
    train: np.ndarray, first_new: int, replay_share: float, feedback_weight: int, seed: int
) -> np.ndarray:
    """A ``replay_share`` sample of the train indices below ``first_new`` (at least one, drawn with
    ``seed``), then every index from ``first_new`` on, ``feedback_weight`` times."""
    old, new = train[train < first_new], train[train >= first_new]
    if replay_share < 1.0 and len(old):
        size = max(1, round(len(old) * replay_share))
        old = np.sort(np.random.default_rng(seed).choice(old, size=size, replace=False))
    return np.concatenate([old, np.tile(new, feedback_weight)])


def _train_size(ws: Workspace, dataset: str) -> int:
    from dcloop.data import load_dataset

    return len(load_dataset(ws, dataset).splits["train"])


def _too_few(
    ws: Workspace, name: str, since: datetime | None, shape: tuple[int, ...], usable: int, needed: int
) -> NothingToRetrain:
    """The refusal, with each count that fell short: labels, then inputs still stored, then the gate's share."""
    from dcloop.store.predictions import labelled_predictions

    labelled = len(labelled_predictions(ws.store, since=since, model_name=name, with_inputs=False))
    stored = len(labelled_examples(ws.store, name, shape, since)[1])
    share = ws.config.gate.feedback_holdout
    when = f" since {since:%Y-%m-%d %H:%M}" if since else ""
    return NothingToRetrain(
        f"Model {name!r} has too few labelled examples to retrain on{when}: {labelled} labelled predictions, "
        f"{stored} of them with inputs still stored, {stored - usable} held out for the gate "
        f"(`gate.feedback_holdout` {share:g}), {usable} left; retraining needs at least {needed} "
        "(`loop.retrain_min_labels`). Post labels to /feedback first."
    )


def _champion(ws: Workspace, name: str) -> Any:
    from dcloop.deploy import get_model_version, model_aliases

    if "champion" not in model_aliases(ws, name):
        raise NotFoundError(f"Model {name!r} has no champion to retrain; promote a version first.")
    return get_model_version(ws, f"{name}@champion")


def _recipe(ws: Workspace, run_id: str | None) -> TrainConfig:
    """The champion run's own recipe (so the challenger differs only by data), else the workspace's."""
    if run_id is None:
        return ws.config.train
    return TrainConfig.model_validate(store_runs.get_run(ws.store, run_id).config)
