"""The dcloop.yaml schema: one flat pydantic model per stage, every field with a default and a reason.

Validation reports every problem at once, each as "`section.field` in FILE must be ... Got X."
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dcloop.errors import ConfigError, suggest

# Largest image (width x height) decoded, at import and by the server; a bomb beyond it is refused unread.
MAX_IMAGE_PIXELS = 16_000_000


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
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS,
        ge=1,
        description="Largest image file (width x height) decoded; larger ones are quarantined unread.",
    )
    text_column: str = Field(
        "text",
        min_length=1,
        description="Column of the text in CSV/TSV/JSONL/Parquet sources (--text-column).",
    )
    label_column: str = Field(
        "label", min_length=1, description="Column of the label in tabular text sources (--label-column)."
    )
    max_chars: int = Field(
        2000,
        ge=1,
        description="Texts longer than this are kept but counted as long: the tokenizer will truncate them.",
    )


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


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class TrainConfig(_Section):
    """The training recipe. Every field can be overridden by a `dcloop train` flag."""

    model: str = Field(
        "resnet-s",
        description="Model zoo name (`dcloop models list`). Left at resnet-s on a text data set: minilm-l6 "
        "with its text recipe (fields still at their defaults take minilm-l6's values).",
    )
    width: int = Field(
        16,
        ge=1,
        le=1024,
        description="Base channel width of the model, where it has one (16: 99% cat-vs-dog).",
    )
    epochs: int = Field(
        30, ge=1, le=10000, description="Upper bound on epochs; early stopping may end sooner."
    )
    batch_size: int = Field(
        64,
        ge=1,
        le=65536,
        description="Global batch size (split across --nproc); 64 gives small sets enough steps.",
    )
    optimizer: str = Field("adamw", description="sgd, adam or adamw.")
    lr: float = Field(3e-3, gt=0.0, le=10.0, description="Peak learning rate.")
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0, description="Decoupled (AdamW) or L2 weight decay.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(True, description="Nesterov momentum for SGD.")
    schedule: str = Field("onecycle", description="constant, step, cosine, linear, onecycle or plateau.")
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
        "val_loss",
        description="Validation metric that early stopping and the kept weights follow (loss: finer than accuracy).",
    )
    ema_decay: float = Field(
        0.99,
        ge=0.0,
        lt=1.0,
        description="Validate and keep a moving average of the weights with this decay (0: off); steadies small sets.",
    )
    grad_accum: int = Field(1, ge=1, le=1024, description="Micro-batches accumulated per optimizer step.")
    grad_clip: float = Field(0.0, ge=0.0, description="Clip the gradient norm to this (0: off).")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="bf16 autocast, or fp32. auto: bf16 where the device computes it natively (a CUDA "
        "GPU with bf16, a CPU with AVX-512 BF16 or AMX), else fp32.",
    )
    channels_last: bool = Field(
        True,
        description="Keep images and conv weights channels-last (NHWC) while training: faster "
        "convolutions on CPUs (oneDNN) and GPUs. The trained weights are saved in the usual layout.",
    )
    tta: Literal["none", "flip", "flip-shift"] = Field(
        "none",
        description="Image models: answer with the mean logits of several views of each image (test-time "
        "augmentation): flip (and its mirror image, 2 views) or flip-shift (also moved one pixel each way, "
        "10 views). Test metrics, ONNX export and serving include the views; inference costs that many "
        "times more. Needs the matching augmentation (hflip, shifts) in training.",
    )
    resize_share: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="Image models that take any input size (resnet-s, resnet-m): train this first share of "
        "the schedule (its steps, or the budget's time) on images scaled by `resize_scale`, the rest at full "
        "size (progressive resizing; 0: full size throughout). Validation, test and serving stay at full size.",
    )
    resize_scale: float = Field(
        0.86,
        gt=0.0,
        le=1.0,
        description="Side of the scaled-down training images as a share of the full side (0.86: 28 px to 24 "
        "px; 0.72: to 20 px, faster, and on cat vs dog 0.2 points less accurate).",
    )
    seed: int = Field(0, description="Seed of weights, data order and augmentation.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    threads: int = Field(0, ge=0, le=512, description="torch intra-op threads (0: all cores).")
    budget_s: Annotated[float, BeforeValidator(_duration)] | None = Field(
        None,
        gt=0.0,
        description="Wall-time budget of the fit (60, '90s', '2m'): the schedule follows its elapsed share "
        "and training stops at it with the best weights (None: epochs alone).",
    )
    target_accuracy: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Stop once val_accuracy reaches this; time and energy to it are recorded.",
    )
    val_every_steps: int = Field(
        0,
        ge=0,
        description="Also validate every N optimizer steps within an epoch (0: at epoch ends only): a "
        "target accuracy then stops the run at the first check that meets it, not at the epoch's end.",
    )
    compile: bool = Field(
        False,
        description="torch.compile (inductor) the training model; needs a C++ compiler on CPU (eager "
        "without one). Off by default: on a 2-core AVX-512 CPU in bf16 it trained resnet-s no faster "
        "(0.99x) and its first compile took about 2 minutes (benchmarks/train_kernels.py).",
    )
    finetune: Literal["full", "lora"] = Field(
        "full",
        description="Text models: train every weight (full), or freeze the encoder and train LoRA adapters "
        "(lora: under 2% of minilm-l6's weights, merged into it after training).",
    )
    lora_r: int = Field(8, ge=1, le=1024, description="LoRA rank: adapter capacity (8 suits sentence tasks).")
    lora_alpha: int = Field(
        16, ge=1, le=4096, description="LoRA scale numerator: the update is scaled by alpha / r."
    )
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA adapters' input.")
    layer_decay: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Text models: each encoder layer below the head learns at this times the rate of the "
        "one above (1: off; 0.8-0.9 keeps pretrained lower layers steadier).",
    )
    freeze_epochs: int = Field(
        0, ge=0, le=10000, description="Text models: train only the head for this many first epochs (0: off)."
    )
    grad_checkpointing: bool = Field(
        False,
        description="Text models: recompute activations in the backward pass (less memory, ~30% slower).",
    )
    max_length: int = Field(
        128,
        ge=2,
        le=512,
        description="Text models: tokens per text kept (longer texts are cut), with [CLS]/[SEP].",
    )
    length_buckets: int = Field(
        50,
        ge=0,
        le=100000,
        description="Text models: sort texts by length within windows of this many batches, so a batch pads "
        "less (0 or 1: plain random batches).",
    )


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '2m', '1.5h' or '1m30s'; a ValueError in config's sentence shape otherwise."""
    import re

    number = r"(\d+(?:\.\d+)?)"
    parts = re.fullmatch(rf"(?:{number}h)?(?:{number}m)?(?:{number}s?)?", text.strip().lower())
    if not text.strip() or parts is None:
        raise ValueError("be a duration such as 90, '90s', '2m' or '1m30s'")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


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


AUTO_SERVE_WORKERS = 4  # the most `serve.workers: auto` starts: their logs share one store writer


class ServeConfig(_Section):
    """The inference server (`dcloop serve`). Flags override these."""

    model: str | None = Field(
        None, description="Model to serve, NAME@ALIAS or NAME@VERSION; default: the only model's champion."
    )
    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless you mean to expose it.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        "auto",
        description="Server processes on one port, each with its own ONNX session, batcher and prediction "
        f"log; auto: one per usable CPU core, at most {AUTO_SERVE_WORKERS}.",
    )
    token_env: str = Field("DCLOOP_TOKEN", description="Environment variable holding the write/admin token.")
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most images one dynamic batch runs together.")
    max_queue_delay_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="Longest a free batch slot waits for more requests (0: run what is queued; batches "
        "still grow while both slots are busy).",
    )
    max_queue: int = Field(
        512, ge=1, le=1_000_000, description="Queued requests beyond this get 503 + Retry-After."
    )
    max_body_mb: float = Field(
        8.0, gt=0.0, le=1024.0, description="Largest request body accepted (413 beyond)."
    )
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS,
        ge=1,
        description="Largest uploaded image (width x height) decoded; guards decompression bombs.",
    )
    threads: int = Field(
        1, ge=0, le=512, description="ONNX Runtime threads per batch; two batches run at once (0: all cores)."
    )
    follow_champion_s: float = Field(
        0.0,
        ge=0.0,
        description="Poll the champion alias this often and switch to it (0: off; --follow-champion: 5).",
    )


class GateConfig(_Section):
    """The promotion gate a challenger must pass to become champion (`dcloop models promote`)."""

    min_improvement: float = Field(
        0.0, ge=-100.0, le=100.0, description="Accuracy points the challenger must gain over the champion."
    )
    max_class_regression: float = Field(
        2.0, ge=0.0, le=100.0, description="Most points any one class's recall may drop."
    )
    class_regression_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="A class drop beyond max_class_regression refuses only when a one-sided exact McNemar "
        "test on that class's test images gives a p-value below this (1: refuse on the drop alone).",
    )
    min_feedback_labels: int = Field(
        50,
        ge=1,
        description="Labelled feedback needed before it counts in the gate (fewer: test split only).",
    )
    feedback_days: float = Field(30.0, gt=0.0, description="How far back labelled feedback counts as recent.")
    feedback_holdout: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of labelled feedback kept out of retraining to judge challengers on "
        "(chosen by a hash of the pixels, so an image stays on its side; 0: judge on the training feedback).",
    )


class RetrainConfig(_Section):
    """How a challenger learns from a little labelled feedback (`dcloop retrain`, a loop turn's retrain).

    A few hundred new-camera examples beside thousands of old ones barely move the weights, so the
    new feedback is drawn several times per epoch (each draw augmented afresh by the recipe), beside
    a replayed sample of the data the champion learned from, which keeps it from forgetting.
    """

    feedback_weight: int = Field(
        4,
        ge=1,
        le=100,
        description="Times each newly added feedback example is drawn per training epoch (1: as often as "
        "the rest).",
    )
    replay_share: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of the champion data set's training examples trained on again (1: all; "
        "less: faster, and the feedback weighs more).",
    )
    lr_scale: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Multiplies the recipe's learning rate when the challenger starts from the champion's "
        "weights (below 1: fine-tune without undoing what it learned).",
    )
    epochs: int | None = Field(
        None, ge=1, le=10_000, description="Epochs of the challenger (null: the champion run's)."
    )


class FeedbackConfig(_Section):
    """What the prediction store keeps, and for how long (privacy)."""

    log_predictions: bool = Field(
        True,
        description="Store every prediction the server answers (off: nothing to label, monitor or retrain on).",
    )
    store_inputs: bool = Field(True, description="Keep each prediction's input pixels for retraining.")
    retention_days: float | None = Field(
        90.0, gt=0.0, description="Delete stored inputs older than this (null: keep forever)."
    )
    max_input_mb: float | None = Field(
        1024.0, gt=0.0, description="Delete the oldest stored inputs beyond this total size (null: no cap)."
    )
    prediction_days: float | None = Field(
        365.0,
        gt=0.0,
        description="Drop unlabelled predictions older than this, kept as hourly aggregates (null: keep).",
    )
    max_predictions_mb: float | None = Field(
        2048.0,
        gt=0.0,
        description="Drop the oldest unlabelled predictions while the log (rows, inputs, labels) is larger.",
    )
    retention_every_s: float = Field(
        60.0, ge=1.0, le=86_400.0, description="How often the server applies these bounds."
    )


class SelectConfig(_Section):
    """How `dcloop optimize` picks the recommended variant."""

    max_accuracy_drop: float = Field(
        0.5,
        ge=0.0,
        le=100.0,
        description="Most test-accuracy points a variant may lose against the baseline.",
    )
    objective: Literal["latency", "throughput", "size", "flops", "energy"] = Field(
        "latency", description="What the recommended variant is best at among those within the drop."
    )


class OptimizeConfig(_Section):
    """Candidate variants of a trained run (`dcloop optimize`): ONNX, int8, pruned, distilled."""

    methods: list[Literal["onnx", "int8", "prune", "distill"]] = Field(
        ["onnx", "int8", "prune", "distill"], description="Methods run by default (fp32 ONNX is always made)."
    )
    opset: int = Field(17, ge=17, le=23, description="ONNX opset of exported files.")
    parity_tolerance: float = Field(
        1e-4, gt=0.0, description="Largest allowed |logits difference| between PyTorch and fp32 ONNX."
    )
    threads: int = Field(
        0, ge=0, le=512, description="ONNX Runtime intra-op threads for evaluation (0: its default)."
    )
    calibration_size: int = Field(
        512, ge=1, le=100_000, description="Training images that calibrate static int8 activation ranges."
    )
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="How int8 activation ranges are chosen from the calibration images."
    )
    per_channel: bool = Field(
        True, description="Quantize conv (and, for text, MatMul) weights per output channel (more accurate)."
    )
    prune_flops: float = Field(
        0.5, gt=0.0, lt=1.0, description="Pruning stops once the model has at most this share of its FLOPs."
    )
    prune_norm: Literal["l1", "l2"] = Field(
        "l2", description="Norm of each coupled channel group's weights; the weakest groups go first."
    )
    prune_round_to: int = Field(
        8, ge=1, le=256, description="Keep pruned channel counts multiples of this (CPU kernels vectorise)."
    )
    finetune_epochs: int = Field(10, ge=0, le=1000, description="Epochs of fine-tuning after pruning.")
    finetune_lr: float = Field(
        3e-3, gt=0.0, le=10.0, description="Learning rate of the post-pruning fine-tune."
    )
    student: str = Field("resnet-s", description="Model zoo name of the distilled student.")
    student_width: int = Field(
        8, ge=1, le=1024, description="Base channel width of the student (teacher: train.width)."
    )
    temperature: float = Field(
        4.0, gt=0.0, le=100.0, description="Softmax temperature of distillation targets."
    )
    alpha: float = Field(
        0.7, ge=0.0, le=1.0, description="Weight of the teacher's soft targets (1 - alpha: the true labels)."
    )
    distill_epochs: int = Field(10, ge=1, le=10000, description="Epochs of student training.")
    text_student_layers: int = Field(
        3,
        ge=1,
        le=64,
        description="Text runs: encoder layers the distilled student keeps of the teacher's (evenly spaced; "
        "it starts from those weights and shares the tokenizer).",
    )
    latency_runs: int = Field(
        200, ge=10, le=1_000_000, description="Batch-1 inferences timed for p50/p99 latency."
    )
    throughput_batches: int = Field(
        20, ge=1, le=100_000, description="Batches of 256 timed for throughput and energy."
    )
    select: SelectConfig = Field(
        default_factory=SelectConfig, description="Rule naming the recommended variant."
    )


TUNABLE_EXTRA = ("augment_strength",)


class ParamSpec(_Section):
    """One searched hyperparameter: a float or int range, or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(description="Kind of values searched.")
    low: float | None = Field(None, description="Lower bound (float and int).")
    high: float | None = Field(None, description="Upper bound, inclusive (float and int).")
    log: bool = Field(False, description="Search on a log scale (bounds must be > 0).")
    step: float | None = Field(None, gt=0.0, description="Grid step of an int or float range.")
    choices: list[str | int | float | bool] | None = Field(None, description="Values of a categorical.")

    @model_validator(mode="after")
    def _check_range(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical needs a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} range needs both `low` and `high`")
        if self.low == self.high:
            raise ValueError(f"the range is empty: low == high == {self.low}")
        if self.low > self.high:
            raise ValueError(f"the range is inverted: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a range takes `log` or `step`, not both")
        return self


def _default_space() -> dict[str, ParamSpec]:
    return {
        "lr": ParamSpec(type="float", low=3e-4, high=1e-2, log=True),
        "weight_decay": ParamSpec(type="float", low=1e-6, high=1e-2, log=True),
        "batch_size": ParamSpec(type="categorical", choices=[64, 128, 256]),
        "width": ParamSpec(type="int", low=16, high=48, step=8),
        "optimizer": ParamSpec(type="categorical", choices=["adamw", "sgd"]),
        "augment_strength": ParamSpec(type="float", low=0.0, high=1.5),
    }


class TuneConfig(_Section):
    """Hyperparameter search (`dcloop tune`): an Optuna study whose trials are tracked runs."""

    trials: int = Field(
        20, ge=1, le=100_000, description="Total trials of the study (a resume runs only the missing ones)."
    )
    workers: int = Field(1, ge=1, le=256, description="Local worker processes sharing the study.")
    storage: str | None = Field(
        None, description="Optuna storage URL (postgresql+psycopg://...); default: SQLite .dcloop/optuna.db."
    )
    study: str = Field("dcloop-tune", min_length=1, max_length=200, description="Study name in the storage.")
    epochs: int = Field(
        4, ge=1, le=10000, description="Epochs per trial (short: trials rank configs, not finish them)."
    )
    metric: Literal["val_accuracy", "val_loss", "val_f1_macro"] = Field(
        "val_accuracy", description="Validation metric a trial is scored and pruned on (loss is minimised)."
    )
    sampler: Literal["tpe", "random"] = Field("tpe", description="How Optuna proposes parameters.")
    pruner: Literal["median", "halving", "none"] = Field(
        "median", description="Stop unpromising trials early from their per-epoch validation metric."
    )
    enqueue_defaults: bool = Field(
        True, description="Run the current train config as the first trial, so the best is never worse."
    )
    seed: int = Field(0, description="Seed of the sampler (worker k uses seed + k).")
    timeout_s: float | None = Field(
        None, gt=0.0, description="Stop starting new trials after this long (null: no limit)."
    )
    heartbeat_s: int = Field(
        10, ge=1, le=3600, description="Trial heartbeat; a trial silent for 3 beats is failed and retried."
    )
    space: dict[str, ParamSpec] = Field(
        default_factory=_default_space,
        description="Searched parameters: train fields (lr, batch_size, width...), augment.<field>, augment_strength.",
    )

    @field_validator("space")
    @classmethod
    def _known_params(cls, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        known = {
            *TrainConfig.model_fields,
            *TUNABLE_EXTRA,
            *(f"augment.{k}" for k in AugmentConfig.model_fields),
        }
        known.discard("augment")
        unknown = sorted(set(space) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if not space:
            raise ValueError("the search space is empty")
        return space


class MonitorConfig(_Section):
    """What `dcloop monitor` watches and when it raises an alert."""

    psi_threshold: float = Field(
        0.2, gt=0.0, le=100.0, description="Alert when a pixel statistic's PSI against training exceeds this."
    )
    ks_pvalue: float = Field(
        0.01, gt=0.0, lt=1.0, description="Alert when the embedding KS test's p-value falls below this."
    )
    min_accuracy: float = Field(
        0.8, ge=0.0, le=1.0, description="Alert when accuracy on labelled feedback falls below this."
    )
    min_labels: int = Field(
        20, ge=1, description="Labelled predictions a version needs before accuracy alerts."
    )
    min_samples: int = Field(50, ge=5, description="Stored inputs needed before drift is tested.")
    reference_size: int = Field(
        2000, ge=50, le=1_000_000, description="Training images sampled as the drift reference."
    )
    psi_bins: int = Field(10, ge=2, le=100, description="Quantile bins of the PSI histograms.")
    embedding_components: int = Field(
        8, ge=1, le=512, description="Principal axes of the embeddings tested by KS (Bonferroni-corrected)."
    )
    buckets: int = Field(
        12, ge=1, le=1000, description="Equal time buckets the accuracy-over-time plot uses."
    )


class LoopTriggersConfig(_Section):
    """When `dcloop loop --watch` starts a turn: any one trigger is enough; each is off by default."""

    min_new_labels: int = Field(
        0, ge=0, description="Start a turn once this many labels arrived since the last turn began (0: off)."
    )
    alert_held_s: float | None = Field(
        None,
        ge=0.0,
        description="Start a turn when a monitor alert (accuracy, drift) has held this many seconds (null: off).",
    )
    interval_s: float | None = Field(
        None, gt=0.0, description="Start a turn this many seconds after the last one began (null: off)."
    )
    cron: str | None = Field(
        None, description="Start a turn at these times: a 5-field cron expression in UTC, e.g. '0 3 * * *'."
    )

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from datetime import UTC, datetime

            from cronsim import CronSim, CronSimError

            try:
                CronSim(value, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(f"be a 5-field cron expression such as '0 3 * * *' ({exc})") from None
        return value


class LoopPolicyConfig(_Section):
    """What may hold a fired trigger back; a held-back trigger is recorded with its reason."""

    cooldown_s: float = Field(
        3600.0, ge=0.0, description="Seconds after a turn ends before a trigger may start the next."
    )
    max_turns_per_day: int | None = Field(
        None, ge=1, description="Turns that may start in any 24 hours (null: no limit)."
    )
    max_cpu_hours_per_day: float | None = Field(
        None,
        gt=0.0,
        description="CPU-hours the controller's turns may take in any 24 hours (null: no limit).",
    )
    max_kwh_per_day: float | None = Field(
        None,
        gt=0.0,
        description="Energy (kWh, before PUE) the turns may take in any 24 hours (null: no limit).",
    )
    quiet_hours: str | None = Field(
        None,
        description="UTC hours when no turn starts, 'HH:MM-HH:MM' (may span midnight, e.g. '22:00-06:00').",
    )
    poll_s: float = Field(
        30.0, gt=0.0, le=86400.0, description="Seconds between the controller's looks at the store."
    )
    lease_s: float = Field(
        300.0,
        ge=10.0,
        description="A turn's lease lasts this long unless renewed (a dead controller's lease expires).",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _hours_parse(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("be two UTC times 'HH:MM-HH:MM', e.g. '22:00-06:00'")
        return value


class LoopRollbackConfig(_Section):
    """`loop.auto_rollback`: the controller moves the champion back when a promotion made it worse."""

    enabled: bool = Field(False, description="Roll back by itself (dcloop models rollback does it by hand).")
    margin: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Live accuracy must fall below the previous champion's by more than this.",
    )
    p_value: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="... significantly: a one-sided two-proportion z-test p-value below this.",
    )
    min_labels: int = Field(
        30, ge=1, description="Labelled predictions each version needs before it is judged."
    )


class LoopConfig(_Section):
    """One turn of the loop (`dcloop loop`): which source, model name and methods it uses."""

    source: str | None = Field(
        None, description="Source to import when the workspace has none yet (e.g. animal-mnist)."
    )
    classes: list[str] | None = Field(None, description="Classes kept from `source` (null: all).")
    model: str | None = Field(None, description="Registry name of the model (default: the data set's name).")
    optimize_methods: list[Literal["onnx", "int8", "prune", "distill"]] = Field(
        ["onnx"],
        description="Optimization methods a turn (and retrain) runs; the recommended variant is served.",
    )
    retrain_min_labels: int = Field(
        50, ge=1, description="Labelled feedback with stored inputs needed before a turn retrains."
    )
    warm_start: bool = Field(True, description="Start the challenger from the champion's weights.")
    triggers: LoopTriggersConfig = Field(
        default_factory=LoopTriggersConfig, description="When `dcloop loop --watch` starts a turn."
    )
    policy: LoopPolicyConfig = Field(
        default_factory=LoopPolicyConfig,
        description="Cooldown, daily budget and quiet hours of the controller.",
    )
    auto_rollback: LoopRollbackConfig = Field(
        default_factory=LoopRollbackConfig, description="When the controller rolls a new champion back."
    )


LoopStep = Literal[
    "prepare", "train", "optimize", "register", "gate", "deploy", "feedback", "monitor", "retrain"
]
"""The steps of a loop turn, in order (dcloop.loop's step table runs exactly these; a test checks it)."""


class StageResources(_Section):
    """What one loop stage's Ray task asks the cluster for (`dcloop loop --cluster`)."""

    num_cpus: float | None = Field(
        None,
        ge=0.0,
        le=1024.0,
        description="CPUs the stage reserves (null: cluster.cpus_per_worker for train, 1 for the others).",
    )
    num_gpus: float | None = Field(
        None,
        ge=0.0,
        le=64.0,
        description="GPUs the stage reserves (null: cluster.gpus_per_worker for train, 0 for the others).",
    )
    memory_gb: float = Field(
        0.0, ge=0.0, le=65536.0, description="Memory the stage reserves, GB (0: no reservation)."
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources the stage needs, e.g. {gpu_box: 1} to pin it to the nodes "
        "started with that resource.",
    )


class ClusterConfig(_Section):
    """Ray: where `--cluster` commands submit their work, and what each piece asks for."""

    address: str | None = Field(
        None,
        description="Ray address (ray://head:10001, HOST:6379 or auto); RAY_ADDRESS wins; "
        "default: the head `dcloop cluster up` started.",
    )
    connect_timeout_s: float = Field(
        10.0, gt=0.0, le=600.0, description="How long to wait for the cluster before giving up with an error."
    )
    num_workers: int = Field(2, ge=1, le=4096, description="Data-parallel training workers (Ray Train).")
    min_workers: int | None = Field(
        None,
        ge=1,
        description="Elastic lower bound: after a node loss training resumes on as few as this many "
        "workers (null: exactly num_workers).",
    )
    cpus_per_worker: float = Field(1.0, gt=0.0, le=1024.0, description="CPUs each training worker reserves.")
    gpus_per_worker: float = Field(0.0, ge=0.0, le=64.0, description="GPUs each training worker reserves.")
    storage_path: str | None = Field(
        None,
        description="Folder (or URI) every node reaches, for Ray Train's own run state (default: "
        ".dcloop/cluster/train); checkpoints stay in the run folder, so the workspace must be shared too.",
    )
    max_failures: int = Field(
        3, ge=-1, le=1000, description="Worker/node losses a job survives by resuming (-1: no limit)."
    )
    stages: dict[LoopStep, StageResources] = Field(
        default_factory=dict,
        description="Per loop stage (prepare, train, ...), what its Ray task reserves under "
        "`dcloop loop --cluster`; a stage left out gets the defaults.",
    )
    serve_min_replicas: int = Field(
        1, ge=1, le=1024, description="`dcloop serve --cluster`: fewest Ray Serve replicas autoscaling keeps."
    )
    serve_max_replicas: int = Field(
        2,
        ge=1,
        le=1024,
        description="Most replicas autoscaling starts (--replicas N fixes the count instead).",
    )
    serve_cpus_per_replica: float = Field(
        1.0,
        gt=0.0,
        le=1024.0,
        description="CPUs each serving replica reserves (its ONNX session and batcher).",
    )
    serve_max_ongoing_requests: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Requests one replica takes at once (its batcher groups them); past it Ray Serve holds "
        "requests back and retries them, which costs latency. Autoscaling aims at half this per replica.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ClusterConfig:
        if self.min_workers is not None and self.min_workers > self.num_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) must not exceed num_workers ({self.num_workers})"
            )
        return self

    @model_validator(mode="after")
    def _serve_bounds(self) -> ClusterConfig:
        if self.serve_min_replicas > self.serve_max_replicas:
            raise ValueError(
                f"serve_min_replicas ({self.serve_min_replicas}) must not exceed "
                f"serve_max_replicas ({self.serve_max_replicas})"
            )
        return self


class EnergyConfig(_Section):
    """Energy, CO2 and money: measured jobs (JobMeter) and `dcloop plan` both use these."""

    pue: float = Field(
        1.2,
        ge=1.0,
        le=5.0,
        description="Facility energy over IT energy (Uptime Institute: ~1.2 for new large sites).",
    )
    carbon_kg_per_kwh: float = Field(
        0.4,
        ge=0.0,
        le=2.0,
        description="Grid carbon intensity, kg CO2e per kWh (about the US/world average).",
    )
    price_per_kwh: float = Field(0.15, ge=0.0, le=10.0, description="Electricity price per kWh (USD).")
    watts_per_cpu_core: float = Field(
        10.0,
        gt=0.0,
        le=500.0,
        description="Power of one busy CPU core when no energy counter exists (estimate).",
    )


ENERGY_DEFAULTS = EnergyConfig()
"""Energy settings without a dcloop.yaml: JobMeter and the planner's specs take their defaults here."""


class HardwareEntryConfig(_Section):
    """One accelerator added to the planner's catalog (dense peak rates, never with-sparsity ones)."""

    name: str = Field(..., min_length=1, description="Catalog name, e.g. my-gpu.")
    label: str | None = Field(None, description="Display name.")
    tflops: dict[Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"], float] = Field(
        ..., min_length=1, description="Dense peak TFLOP/s (TOP/s for int8) per precision."
    )
    memory_gb: float = Field(..., gt=0, description="Accelerator memory, GB.")
    memory_bw_gbs: float = Field(..., gt=0, description="Memory bandwidth, GB/s.")
    tdp_w: float | None = Field(
        None, gt=0, description="Board power, W (needed for energy unless --power-w)."
    )
    interconnect_gbs: float | None = Field(None, gt=0, description="Accelerator interconnect, GB/s.")
    interconnect: str = Field("", description="Interconnect name.")
    source: str = Field(..., min_length=1, description="Where the numbers come from (datasheet, URL).")
    sources: dict[str, str] = Field(
        default_factory=dict, description="Per-field sources overriding `source`."
    )

    @field_validator("tflops")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"peak rates must be positive, got {bad}")
        return value


class PlanConfig(_Section):
    """Defaults of `dcloop plan` (data-center planning of large training and serving jobs)."""

    accelerator: str = Field(
        "h100-sxm", description="Accelerator when none is given (`dcloop plan hardware`)."
    )
    utilization: float = Field(
        0.40,
        gt=0.0,
        le=1.0,
        description="Model FLOPs utilization (MFU) when none is given; Llama 3 reports 38-43%.",
    )
    precision: Literal["fp32", "tf32", "fp16", "bf16", "fp8"] = Field(
        "bf16", description="Training precision."
    )
    recompute: Literal["none", "selective", "full"] = Field(
        "selective", description="Activation recomputation (Korthikanti et al. 2022)."
    )
    zero_stage: int = Field(1, ge=0, le=3, description="ZeRO stage: 1 shards optimizer states, 3 everything.")
    usable_memory_fraction: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Share of accelerator memory usable (the rest: runtime, fragmentation).",
    )
    accelerator_hour_usd: float = Field(
        0.0, ge=0.0, description="Rental price per accelerator-hour (0: own hardware)."
    )
    serve_compute_utilization: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of peak FLOP/s that serving prefill reaches (assumption)."
    )
    serve_bandwidth_utilization: float = Field(
        0.8, gt=0.0, le=1.0, description="Share of peak memory bandwidth that decoding reaches (assumption)."
    )
    hardware: list[HardwareEntryConfig] = Field(
        default_factory=list,
        description="Accelerators added to the catalog (same fields as plan/hardware.yaml).",
    )


class Config(_Section):
    """The whole dcloop.yaml."""

    name: str = Field("dcloop", description="Workspace name, shown in reports.")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)


def _describe(error: Any, source: str) -> str:
    field = ".".join(str(p) for p in error["loc"]).removesuffix(".[key]")  # a mapping's bad key
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        return f"`{field}` in {source} is not a known field. Remove it or check its spelling."
    if kind == "missing":
        return f"`{field}` in {source} is required."
    message = error["msg"]
    message = message.removeprefix("Value error, ")  # raised by a validator: its text says it all
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


# Fields that name a registry entry, and that registry's kind. The registries live above config
# (they import torch), so `check_names` is handed their names rather than importing them.
REGISTRY_FIELDS = {
    "train.model": "model",
    "train.optimizer": "optimizer",
    "train.schedule": "schedule",
    "train.loss": "loss",
    "optimize.student": "model",
}


def check_names(config: Config, known: Mapping[str, Collection[str]], source: str = "dcloop.yaml") -> None:
    """Raise one ConfigError naming every field (and tuned choice) that names no registry entry.

    ``known`` maps a registry kind (model, optimizer, schedule, loss) to its names.
    """
    named: list[tuple[str, str, object]] = []
    for path, kind in REGISTRY_FIELDS.items():
        section, field = path.split(".")
        named.append((f"`{path}`", kind, getattr(getattr(config, section), field)))
    for field, spec in config.tune.space.items():
        tuned = REGISTRY_FIELDS.get(f"train.{field}")
        if tuned is not None and spec.choices:
            named += [(f"`tune.space.{field}.choices`", tuned, choice) for choice in spec.choices]
    problems = []
    for where, kind, value in named:
        names = sorted(known[kind])
        if value not in names:
            hint = suggest(str(value), names)
            problems.append(
                f"{where} in {source} must be {_article(kind)} {kind} name ({', '.join(names)}). "
                f"Got {value!r}.{hint}"
            )
    if problems:
        raise ConfigError(" ".join(problems))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def dump(config: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def describe(path: str) -> str:
    """The description of field ``section.field`` (the CLI shows it as the help of the flag that overrides it)."""
    section, _, name = path.partition(".")
    model = Config.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, _Section), path
    description = model.model_fields[name].description
    assert description, path  # every field has one (tested)
    return description


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
            # nested models (tune.space) as plain data
            plain = value.model_dump(mode="json", exclude_none=True).get(name)
            rendered = yaml.safe_dump({name: plain}, default_flow_style=True).strip()[1:-1]
            lines.append(f"{pad}{rendered}")
