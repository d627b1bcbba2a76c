"""Build plan specs from flags, a --spec YAML file and the workspace config (the config edge).

Inputs are one flat mapping whose keys are the flag names with underscores (``tokens``, ``count``,
``power_w``...). Sizes accept K/M/B/T suffixes ("70B", "2T", "1.4e12"). Flags override the file; the
file overrides the config defaults.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from dcloop.config import EnergyConfig, PlanConfig
from dcloop.errors import ConfigError, suggest
from dcloop.plan._image import ImageServingSpec
from dcloop.plan._models import ModelShape, get_preset, params_only, transformer
from dcloop.plan._serving import ServingSpec
from dcloop.plan._training import TrainingSpec

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
MODEL_KEYS = (
    "preset",
    "params",
    "active_params",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "vocab",
    "seq_len",
    "ffn",
    "gated_mlp",
    "tied_embeddings",
)
TRAIN_KEYS = (
    "tokens",
    "accelerator",
    "count",
    "utilization",
    "tokens_per_s",
    "model_flops_per_s",
    "hardware_flops_per_s",
    "wall_days",
    "accelerator_hours",
    "goodput",
    "precision",
    "recompute",
    "zero_stage",
    "tp",
    "pp",
    "micro_batch",
    "usable_memory_fraction",
)
ENERGY_KEYS = ("power_w", "pue", "carbon_kg_per_kwh", "price_per_kwh", "accelerator_hour_usd")
SERVE_KEYS = (
    "accelerator",
    "target_rps",
    "prompt_tokens",
    "output_tokens",
    "precision",
    "kv_precision",
    "batch",
    "tp",
    "latency_s",
    "usable_memory_fraction",
)
KNOWN = set(MODEL_KEYS + TRAIN_KEYS + ENERGY_KEYS + SERVE_KEYS + ("days", "images_per_s", "max_load"))
_INTS = {
    "count",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "vocab",
    "seq_len",
    "ffn",
    "zero_stage",
    "tp",
    "pp",
    "micro_batch",
    "prompt_tokens",
    "output_tokens",
    "batch",
}


def parse_quantity(value: Any, name: str) -> float:
    """A positive-or-zero number, from a number or text such as '70B', '1.4T', '2e12' or '380'."""
    if isinstance(value, bool):
        raise ConfigError(f"`{name}` must be a number. Got {value!r}.")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMbBgGtTpP]?)\s*", str(value))
        if match is None:
            raise ConfigError(f"`{name}` must be a number such as 70B, 1.4T or 2e12. Got {value!r}.")
        number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(number):
        raise ConfigError(f"`{name}` must be finite. Got {value!r}.")
    return number


def load_spec_file(path: Path) -> dict[str, Any]:
    """A --spec YAML: one mapping of the same keys as the flags."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"Cannot read spec {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {getattr(exc, 'problem', exc)}.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of plan inputs. Got {type(raw).__name__}.")
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise ConfigError(
            f"{path} has unknown key(s) {', '.join(unknown)}. Known: {', '.join(sorted(KNOWN))}."
            f"{suggest(unknown[0], KNOWN)}"
        )
    return raw


def merge(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """File values overridden by the flags that were given (None means not given)."""
    merged = dict(file_values)
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


def build_model(values: Mapping[str, Any]) -> ModelShape:
    """A preset, a transformer shape, or a bare parameter count; ``active_params`` for a mixture of experts."""
    v = parse_inputs(values)
    model = _model(v)
    active = v.get("active_params")
    if active is None:
        return model
    if not 0 < active <= model.params:
        raise ConfigError(
            f"`active_params` must be positive and at most the {model.params:.4g} parameters. Got {active:g}."
        )
    return replace(model, active_params=active)


def _model(v: Mapping[str, Any]) -> ModelShape:
    shape_keys = ("layers", "hidden", "heads")
    if v.get("preset"):
        return get_preset(str(v["preset"]), v.get("seq_len"))
    if any(v.get(k) is not None for k in shape_keys):
        missing = [k for k in (*shape_keys, "seq_len") if v.get(k) is None]
        if missing:
            raise ConfigError(
                f"A transformer shape also needs {', '.join('--' + m.replace('_', '-') for m in missing)}."
            )
        return transformer(
            "custom",
            v["layers"],
            v["hidden"],
            v["heads"],
            v["seq_len"],
            v.get("vocab") or 0,
            v.get("kv_heads"),
            v.get("ffn"),
            bool(v.get("gated_mlp", False)),
            bool(v.get("tied_embeddings", True)),
            v.get("params"),
        )
    if v.get("params") is not None:
        return params_only(v["params"])
    raise ConfigError("Give the model: --preset NAME, --params N, or --layers/--hidden/--heads/--seq-len.")


def build_training_spec(values: Mapping[str, Any], plan: PlanConfig, energy: EnergyConfig) -> TrainingSpec:
    v = parse_inputs(values)
    if v.get("tokens") is None:
        raise ConfigError("Give the training tokens (--tokens, e.g. 2T).")
    return TrainingSpec(
        model=build_model(v),
        tokens=v["tokens"],
        accelerator=v.get("accelerator") or plan.accelerator,
        count=v.get("count"),
        utilization=v.get("utilization"),
        tokens_per_s=v.get("tokens_per_s"),
        model_flops_per_s=v.get("model_flops_per_s"),
        hardware_flops_per_s=v.get("hardware_flops_per_s"),
        wall_days=v.get("wall_days"),
        accelerator_hours=v.get("accelerator_hours"),
        default_utilization=plan.utilization,
        goodput=v.get("goodput"),
        precision=v.get("precision") or plan.precision,
        recompute=v.get("recompute"),
        default_recompute=plan.recompute,
        zero_stage=v.get("zero_stage"),
        default_zero_stage=plan.zero_stage,
        tp=v.get("tp"),
        pp=v.get("pp"),
        micro_batch=_given(v.get("micro_batch"), 1),
        usable_memory_fraction=_given(v.get("usable_memory_fraction"), plan.usable_memory_fraction),
        **site_inputs(v, plan, energy),
    )


def build_serving_spec(values: Mapping[str, Any], plan: PlanConfig, energy: EnergyConfig) -> ServingSpec:
    v = parse_inputs(values)
    given = {
        k: v[k]
        for k in ("target_rps", "prompt_tokens", "output_tokens", "batch", "tp", "latency_s", "kv_precision")
        if v.get(k) is not None
    }
    return ServingSpec(
        model=build_model(v),
        accelerator=v.get("accelerator") or plan.accelerator,
        precision=v.get("precision") or plan.precision,
        compute_utilization=plan.serve_compute_utilization,
        bandwidth_utilization=plan.serve_bandwidth_utilization,
        usable_memory_fraction=_given(v.get("usable_memory_fraction"), plan.usable_memory_fraction),
        **given,
        **site_inputs(v, plan, energy),
    )


def build_image_spec(values: Mapping[str, Any], plan: PlanConfig, energy: EnergyConfig) -> ImageServingSpec:
    v = parse_inputs(values)
    for key in ("images_per_s", "target_rps"):
        if v.get(key) is None:
            raise ConfigError(f"Give --{key.replace('_', '-')}.")
    extra = {"max_load": v["max_load"]} if v.get("max_load") is not None else {}
    return ImageServingSpec(
        images_per_s=v["images_per_s"],
        target_rps=v["target_rps"],
        accelerator=v.get("accelerator"),
        **extra,
        **site_inputs(v, plan, energy),
    )


def site_inputs(v: Mapping[str, Any], plan: PlanConfig, energy: EnergyConfig) -> dict[str, Any]:
    """Power, PUE, carbon intensity and prices: the flags given, else the workspace's settings."""
    return {
        "power_w": v.get("power_w"),
        "pue": _given(v.get("pue"), energy.pue),
        "carbon_kg_per_kwh": _given(v.get("carbon_kg_per_kwh"), energy.carbon_kg_per_kwh),
        "price_per_kwh": _given(v.get("price_per_kwh"), energy.price_per_kwh),
        "accelerator_hour_usd": _given(v.get("accelerator_hour_usd"), plan.accelerator_hour_usd),
    }


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def parse_inputs(values: Mapping[str, Any]) -> dict[str, Any]:
    """Text quantities to numbers; integer fields must be whole."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or key in (
            "preset",
            "accelerator",
            "precision",
            "kv_precision",
            "recompute",
            "gated_mlp",
            "tied_embeddings",
        ):
            out[key] = value
            continue
        number = parse_quantity(value, key)
        if key in _INTS:
            if number != int(number):
                raise ConfigError(f"`{key}` must be a whole number. Got {value!r}.")
            number = int(number)
        out[key] = number
    return out
