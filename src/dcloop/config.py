"""The dcloop.yaml schema: one flat pydantic model per stage, every field with a default and a reason.

Validation reports every problem at once, each as "`section.field` in FILE must be ... Got X."
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dcloop.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """How sources become a prepared, versioned data set."""

    image_size: int = Field(28, ge=4, le=1024, description="Side of the square images after resizing.")
    color: Literal["grayscale", "rgb"] = Field("grayscale", description="Colour mode images convert to.")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of non-test data held for validation."
    )
    test_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share held out for the final test (ignored when a source has its own).",
    )
    seed: int = Field(0, description="Seed of the stratified split, so a split is reproducible.")
    drop_blank: bool = Field(True, description="Drop constant images: they carry no signal.")
    dedupe: bool = Field(True, description="Collapse exact pixel duplicates so test never leaks into train.")


class AugmentConfig(_Section):
    """Batched augmentation on the training device; off at evaluation. Names follow Keras ImageDataGenerator."""

    enabled: bool = Field(True, description="Augment training batches.")
    rotation: float = Field(15.0, ge=0.0, le=180.0, description="Rotation range in degrees (+/-).")
    width_shift: float = Field(0.1, ge=0.0, lt=1.0, description="Horizontal shift as a fraction of width.")
    height_shift: float = Field(0.1, ge=0.0, lt=1.0, description="Vertical shift as a fraction of height.")
    shear: float = Field(0.1, ge=0.0, lt=1.0, description="Shear intensity (Keras units: radians).")
    zoom: float = Field(0.1, ge=0.0, lt=1.0, description="Zoom range: scale drawn from [1-zoom, 1+zoom].")
    hflip: bool = Field(True, description="Flip horizontally with probability 0.5.")
    fill_mode: Literal["nearest", "constant", "reflect"] = Field(
        "nearest", description="How pixels outside the input are filled."
    )


class TrainConfig(_Section):
    """The training recipe. Every field can be overridden by a `dcloop train` flag."""

    model: str = Field("resnet-s", description="Model zoo name (`dcloop models list`).")
    width: int = Field(32, ge=1, le=1024, description="Base channel width of the model, where it has one.")
    epochs: int = Field(
        15, ge=1, le=10000, description="Upper bound on epochs; early stopping may end sooner."
    )
    batch_size: int = Field(128, ge=1, le=65536, description="Global batch size (split across --nproc).")
    optimizer: str = Field("adamw", description="sgd, adam or adamw.")
    lr: float = Field(3e-3, gt=0.0, le=10.0, description="Peak learning rate.")
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0, description="Decoupled (AdamW) or L2 weight decay.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(True, description="Nesterov momentum for SGD.")
    schedule: str = Field("onecycle", description="constant, step, cosine, onecycle or plateau.")
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warmup length (onecycle has its own).")
    step_size: int = Field(10, ge=1, description="Epochs between decays for the step schedule.")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="Decay factor for step and plateau schedules.")
    plateau_patience: int = Field(
        2, ge=0, le=1000, description="Epochs without improvement of `monitor` before plateau decays."
    )
    loss: str = Field("cross_entropy", description="cross_entropy, bce (binary tasks) or mse.")
    label_smoothing: float = Field(0.05, ge=0.0, lt=1.0, description="Cross-entropy label smoothing.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Training augmentation.")
    early_stopping_patience: int = Field(
        0, ge=0, description="Stop after this many epochs without improvement of `monitor` (0: off)."
    )
    monitor: Literal["val_accuracy", "val_loss", "val_f1_macro"] = Field(
        "val_accuracy", description="Validation metric that early stopping and the best checkpoint follow."
    )
    grad_accum: int = Field(1, ge=1, le=1024, description="Micro-batches accumulated per optimizer step.")
    grad_clip: float = Field(0.0, ge=0.0, description="Clip the gradient norm to this (0: off).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast on supporting devices.")
    seed: int = Field(0, description="Seed of weights, data order and augmentation.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    threads: int = Field(0, ge=0, le=512, description="torch intra-op threads (0: all cores).")


class TrackingConfig(_Section):
    """Where runs are mirrored for the MLflow UI."""

    mlflow: bool = Field(True, description="Mirror runs to MLflow.")
    mlflow_uri: str | None = Field(
        None, description="Tracking URI of a team server; default: the workspace's own SQLite store."
    )
    experiment: str = Field("dcloop", description="MLflow experiment name.")


class StoreConfig(_Section):
    """The workspace database."""

    url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://...); default: SQLite in .dcloop/."
    )


class Config(_Section):
    """The whole dcloop.yaml."""

    name: str = Field("dcloop", description="Workspace name, shown in reports.")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)


def _describe(error: Any, source: str) -> str:
    field = ".".join(str(p) for p in error["loc"])
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        return f"`{field}` in {source} is not a known field. Remove it or check its spelling."
    if kind == "missing":
        return f"`{field}` in {source} is required."
    message = error["msg"]
    message = message[0].lower() + message[1:] if message else message
    return f"`{field}` in {source} must satisfy: {message}. Got {got!r}."


def validate(raw: dict[str, Any], source: str = "dcloop.yaml") -> Config:
    """Build a Config from parsed YAML, reporting every problem at once in one line."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping of sections. Got {type(raw).__name__}.")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(" ".join(_describe(e, source) for e in exc.errors())) from None


def load(path: Path) -> Config:
    """Read and validate a dcloop.yaml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config {path}: {exc.strerror}.") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}.") from None
    return validate(raw, source=str(path))


def with_overrides(config: Config, section: str, overrides: dict[str, Any], source: str = "flags") -> Config:
    """Return a copy of ``config`` with ``overrides`` (None values skipped) applied to one section."""
    raw = config.model_dump()
    raw[section].update({k: v for k, v in overrides.items() if v is not None})
    return validate(raw, source=source)


def dump(config: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def commented_template() -> str:
    """A commented dcloop.yaml listing every field with its default and why."""
    lines = ["# dcloop workspace configuration. Every field is optional; defaults are shown.", ""]
    _template_lines(Config(), Config, lines, indent=0)
    return "\n".join(lines) + "\n"


def _template_lines(value: BaseModel, model: type[BaseModel], lines: list[str], indent: int) -> None:
    pad = "  " * indent
    for name, info in model.model_fields.items():
        current = getattr(value, name)
        if info.description:
            lines.append(f"{pad}# {info.description}")
        if isinstance(current, BaseModel):
            lines.append(f"{pad}{name}:")
            _template_lines(current, type(current), lines, indent + 1)
            lines.append("")
        else:
            rendered = yaml.safe_dump({name: current}, default_flow_style=True).strip()[1:-1]
            lines.append(f"{pad}{rendered}")
