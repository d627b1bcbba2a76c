"""The search space: what a trial samples from ``tune.space`` and how it lands in a train recipe.

Parameter names are train fields (``lr``, ``batch_size``, ``width``, ``optimizer``...),
``augment.<field>``, or ``augment_strength``: one factor scaling every geometric augmentation
range of the workspace recipe (0 turns augmentation off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dcloop.config import ParamSpec, TrainConfig
from dcloop.errors import ConfigError

if TYPE_CHECKING:
    import optuna

_SCALED = ("rotation", "width_shift", "height_shift", "shear", "zoom")
_SCALED_MAX = {"rotation": 180.0, "width_shift": 0.95, "height_shift": 0.95, "shear": 0.95, "zoom": 0.95}


def suggest(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Sample every parameter of ``space`` for ``trial`` (enqueued values are used as given)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec.choices or []))
        elif spec.type == "int":
            assert spec.low is not None and spec.high is not None  # validated by ParamSpec
            params[name] = trial.suggest_int(
                name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            assert spec.low is not None and spec.high is not None
            params[name] = trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
    return params


def apply_params(recipe: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """``recipe`` with the sampled ``params`` applied; a combination train rejects is a ConfigError."""
    raw = recipe.model_dump()
    for name, value in params.items():
        if name == "augment_strength":
            for field in _SCALED:
                raw["augment"][field] = min(raw["augment"][field] * value, _SCALED_MAX[field])
            raw["augment"]["enabled"] = raw["augment"]["enabled"] and value > 0
        elif name.startswith("augment."):
            raw["augment"][name.removeprefix("augment.")] = value
        else:
            raw[name] = value
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"`tune.space.{field}` gives train.{field} = {first.get('input')!r}: {first['msg']}."
        ) from None


def current_values(recipe: TrainConfig, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The recipe's own value of each searched parameter that lies inside the space (to enqueue it)."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "augment_strength":
            value: Any = 1.0
        elif name.startswith("augment."):
            value = getattr(recipe.augment, name.removeprefix("augment."))
        else:
            value = getattr(recipe, name)
        if spec.type == "categorical":
            if value in (spec.choices or []):
                values[name] = value
        elif spec.low is not None and spec.high is not None and spec.low <= value <= spec.high:
            values[name] = int(value) if spec.type == "int" else float(value)
    return values


def recipe_changes(base: TrainConfig, tuned: TrainConfig) -> dict[str, Any]:
    """Fields of ``tuned`` that differ from ``base`` (augment as a nested mapping): a dcloop.yaml fragment."""
    before, after = base.model_dump(mode="json"), tuned.model_dump(mode="json")
    changes: dict[str, Any] = {k: v for k, v in after.items() if k != "augment" and before[k] != v}
    augment = {k: v for k, v in after["augment"].items() if before["augment"][k] != v}
    if augment:
        changes["augment"] = augment
    return changes
