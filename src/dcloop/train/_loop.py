"""The training loop: ``fit_model`` trains one model on one prepared data set, read top to bottom.

One optimizer step consumes ``batch_size`` images (the global batch). Under torch.distributed the
global batch is split across ranks and each shard into ``grad_accum`` micro-batches; every micro-batch
loss is weighted by its share of the global batch, so the summed gradient equals the gradient of the
mean loss over the whole global batch, whatever the number of ranks or micro-batches.
Data order comes from a seeded torch.Generator; it, the global RNGs, optimizer, schedule and early
stopping state are checkpointed every epoch, so a resumed run ends with the same weights.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dcloop import progress
from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.errors import TrainError
from dcloop.train import _checkpoint as ckpt
from dcloop.train._augment import build_augment
from dcloop.train._batches import Batches, build_batches
from dcloop.train._budget import Clock, agree
from dcloop.train._compile import maybe_compile
from dcloop.train._distributed import rank_world
from dcloop.train._finetune import encoder_freezer
from dcloop.train._layout import to_channels_last
from dcloop.train._memory import keep_freed_memory
from dcloop.train._recipe import LossFn, build_loss, build_optimizer, build_schedule
from dcloop.train._resize import reduced_size, resized

log = logging.getLogger(__name__)
EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class FitResult:
    """The trained model (best epoch's weights by ``recipe.monitor``, eval mode) and its history."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    stopped_early: bool
    images_per_s: float
    train_s: float
    precision: str = "fp32"  # what ``recipe.precision`` resolved to on this device
    spent: dict[str, Any] = field(default_factory=dict)  # how the time went (``Clock.report``)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its CPU kernels still compute bf16 natively
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10_", "ALL", "DEFAULT")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where ``device`` computes it natively, else fp32 (emulated bf16 is slower).

    On CPU, native means the CPU has AVX-512 BF16 or AMX and oneDNN is not capped below them
    (``ONEDNN_MAX_CPU_ISA``, which also lets a bf16 machine act as one without it).
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if device.type == "cpu" and native and _onednn_allows_bf16() else "fp32"


def _onednn_allows_bf16() -> bool:
    import os

    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return cap.startswith(_BF16_ISAS)


def fit_model(
    model: nn.Module,
    dataset: PreparedDataset,
    recipe: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    on_epoch: EpochHook | None = None,
    on_check: EpochHook | None = None,
    progress_label: str = "train",
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    tokenizer: Any = None,
    comm_hook: Callable[..., Any] | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset``'s train split, validating on its val split every epoch.

    ``loss_fn(logits, targets, images)`` replaces the recipe's loss (distillation passes its own).
    ``on_epoch(epoch, metrics)`` runs on rank 0 after each epoch's validation and checkpoint; an
    exception from it stops training and propagates. With ``train.val_every_steps``, ``on_check(epoch,
    metrics)`` runs on rank 0 after each validation within an epoch (``step`` and ``epoch_s``, the
    epoch's seconds so far, in ``metrics``). With ``checkpoint_dir`` every epoch is saved
    there, and ``resume=True`` continues from its latest checkpoint. A text data set needs the
    model's ``tokenizer`` (``tokenizers.Tokenizer``). ``comm_hook`` is a DDP communication hook for
    the gradient allreduce when there are several ranks (dcloop.cluster times the allreduce with one).
    """
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    rank, world = rank_world()
    device = resolve_device(recipe.device)
    if device.type == "cpu":
        keep_freed_memory()  # each step's activations reuse the last step's pages
    recipe = recipe.model_copy(update={"precision": resolve_precision(recipe.precision, device)})
    seed_everything(recipe.seed)
    augment = build_augment(**recipe.augment.model_dump(exclude={"enabled"})).to(device)
    # what the modality's batches need: images their augmentation, text its tokenizer and lengths
    batch_options = {
        "device": device,
        "augment": augment if recipe.augment.enabled else None,
        "channels_last": recipe.channels_last,
        "tokenizer": tokenizer,
        "max_length": recipe.max_length,
        "length_buckets": recipe.length_buckets,
        "vocab_size": getattr(model, "vocab_size", None),
    }
    train_data = build_batches(dataset, "train", **batch_options)
    val_data = build_batches(dataset, "val", **batch_options)
    if len(train_data) < world * recipe.grad_accum:
        raise TrainError(
            f"The train split has {len(train_data)} examples, fewer than processes x `train.grad_accum` "
            f"({world} x {recipe.grad_accum})."
        )

    model.to(device)
    restore_layout = to_channels_last(model, device) if recipe.channels_last else lambda: None
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        if comm_hook is not None:
            net.register_comm_hook(None, comm_hook)
    net, compiled = maybe_compile(net, device, recipe.compile)
    optimizer = build_optimizer(
        recipe.optimizer,
        model,
        recipe.lr,
        recipe.weight_decay,
        recipe.momentum,
        recipe.nesterov,
        layer_decay=recipe.layer_decay,
    )
    freeze = encoder_freezer(model) if recipe.freeze_epochs else None
    steps_per_epoch = math.ceil(len(train_data) / recipe.batch_size)
    mode = "min" if recipe.monitor == "val_loss" else "max"
    schedule = build_schedule(
        recipe.schedule,
        steps_per_epoch=steps_per_epoch,
        epochs=recipe.epochs,
        warmup_epochs=recipe.warmup_epochs,
        step_size=recipe.step_size,
        gamma=recipe.gamma,
        patience=recipe.plateau_patience,
        mode=mode,
    )
    criterion = loss_fn or build_loss(recipe.loss, recipe.label_smoothing)
    order = torch.Generator().manual_seed(recipe.seed)
    ema = _Ema(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    scored = ema.model if ema is not None else model  # the weights validated, kept and returned
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    early = {"best": -math.inf if mode == "max" else math.inf, "best_epoch": 0, "bad": 0}
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start = 0

    # validation scores with torchmetrics, whose first import takes seconds (more on a busy machine):
    # paid here, before the clock starts, so the budget and the time to a target count training only
    import torchmetrics.functional.classification  # noqa: F401

    clock = Clock(recipe.budget_s, recipe.target_accuracy)
    latest = ckpt.latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None and resume else None
    if latest is not None:
        weights, best_state, state = ckpt.load_checkpoint(latest)
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        order.set_state(state["order"])
        ckpt.set_rng_state(state["rng"])
        early, history, start = dict(state["early"]), list(state["history"]), int(state["epoch"])
        if ema is not None:
            ema.load(state["ema"], int(state["ema_updates"]))
        if "clock" in state:
            clock.load_state_dict(state["clock"])
        log.info("resuming after epoch %d from %s", start, latest)

    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    stopped_early = False
    train_s = 0.0
    images = 0
    # with a budget, time is the run's length: epochs no longer bound it and the schedule follows
    # the elapsed share of the budget (``Clock.progress``)
    last_epoch = recipe.epochs if recipe.budget_s is None else 10**9
    total_steps = recipe.epochs * steps_per_epoch
    low_size = reduced_size(model, recipe, dataset.image_shape if dataset.modality == "image" else None)
    low_until = recipe.resize_share * total_steps  # schedule steps before this train at ``low_size``
    reserve = 0.0  # the last validation and checkpoint: kept back from the budget for the closing ones
    first_step = True
    clock.start()
    # with a budget the bar counts its seconds (read here, not on the clock, which tests may drive)
    bar_t0 = time.perf_counter() - clock.before
    if recipe.budget_s is None:
        bar_total, unit = float((recipe.epochs - start) * steps_per_epoch), "steps"
    else:
        bar_total, unit = recipe.budget_s, "s"
    with progress.bar(progress_label, total=bar_total, unit=unit) as bar:
        for epoch in range(start + 1, last_epoch + 1):
            if clock.stopped_by:
                break  # resumed after the run had already stopped at its budget or target
            t0 = time.perf_counter()
            seen = 0
            checks_s = 0.0  # checks within the epoch: charged to validation, not to training
            met: dict[str, float] | None = None  # the check that met the target, if one did
            net.train()
            if freeze is not None:
                freeze(epoch <= recipe.freeze_epochs)
            # loss sum, correct, count (this rank), kept on the device so steps never wait on the host
            totals = torch.zeros(3, dtype=torch.float64, device=device)
            for step, batch in enumerate(train_data.epoch(order, recipe.batch_size)):
                at, out_of_time = _position(clock, (epoch - 1) * steps_per_epoch + step, total_steps, reserve)
                if recipe.budget_s is not None:
                    at, out_of_time = (int(v) for v in agree([float(at), float(out_of_time)], world, device))
                if out_of_time:
                    clock.stopped_by = "budget"
                    break
                factor = schedule.factor(at)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
                if len(batch) < world * recipe.grad_accum:
                    continue  # a sliver too small to give every rank and micro-batch an image
                t_step = time.perf_counter()
                _step(
                    net,
                    optimizer,
                    criterion,
                    recipe,
                    device,
                    train_data,
                    batch,
                    rank,
                    world,
                    totals,
                    low_size if at < low_until else None,
                )
                if compiled and first_step:  # the graph is built and compiled in the first step
                    clock.charge("compile", time.perf_counter() - t_step)
                first_step = False
                seen += len(batch)
                if ema is not None:
                    ema.update(model)
                if recipe.budget_s is None:
                    bar.advance(info=f"epoch {epoch}/{recipe.epochs}")
                else:
                    bar.set(min(time.perf_counter() - bar_t0, recipe.budget_s), info=f"epoch {epoch}")
                every = recipe.val_every_steps
                if every and (step + 1) % every == 0 and step + 1 < steps_per_epoch:  # the end validates
                    t_val = time.perf_counter()
                    check = _validate(model, ema, scored, val_data, dataset.num_classes, world)
                    reached = clock.reached(check.get("val_accuracy", 0.0), epoch, step + 1)
                    if rank == 0 and on_check is not None:
                        on_check(epoch, check | {"step": step + 1, "epoch_s": time.perf_counter() - t0})
                    net.train()
                    checks_s += time.perf_counter() - t_val  # with on_check's own time: none is training
                    if agree([float(reached)], world, device)[0]:
                        met = check  # stop taking steps; the epoch closes with these weights
                        break
            epoch_train_s = time.perf_counter() - t0 - checks_s
            train_s += epoch_train_s
            images += seen
            clock.charge("train", epoch_train_s)
            metrics = _epoch_metrics(totals, world, optimizer, epoch_train_s, len(train_data))
            t_val, closing = time.perf_counter(), clock.elapsed()
            metrics.update(
                met
                if met is not None
                else _validate(model, ema, scored, val_data, dataset.num_classes, world)
            )
            clock.charge("validate", time.perf_counter() - t_val + checks_s)
            metrics["epoch_s"] = time.perf_counter() - t0
            if agree([float(clock.reached(metrics.get("val_accuracy", 0.0), epoch))], world, device)[0]:
                clock.stopped_by = "target"
            elif agree([float(clock.out_of_time(reserve))], world, device)[0]:
                clock.stopped_by = "budget"  # no time left for a step and the closing validation
            current = metrics.get(recipe.monitor, float("nan"))
            schedule.epoch_end(current)
            improved = not math.isnan(current) and better(current, early["best"])
            # a tie keeps the later, further-annealed weights but does not reset the patience
            if improved or current == early["best"] or math.isnan(current):
                early.update(best=current, best_epoch=epoch)
                best_state = ckpt.cpu_state(scored.state_dict())
            early["bad"] = 0 if improved else early["bad"] + 1
            history.append(metrics)
            t_save = time.perf_counter()
            if rank == 0 and checkpoint_dir is not None:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "order": order.get_state(),
                    "rng": ckpt.rng_state(),
                    "early": early,
                    "history": history,
                    "clock": clock.state_dict(),
                }
                if ema is not None:
                    state |= {"ema": ckpt.cpu_state(ema.model.state_dict()), "ema_updates": ema.updates}
                ckpt.save_checkpoint(checkpoint_dir, epoch, model.state_dict(), best_state, state)
            clock.charge("checkpoint", time.perf_counter() - t_save)
            reserve = clock.elapsed() - closing
            if rank == 0 and on_epoch is not None:
                on_epoch(epoch, metrics)
            if clock.stopped_by:
                break
            if recipe.early_stopping_patience and early["bad"] >= recipe.early_stopping_patience:
                stopped_early = epoch < recipe.epochs
                break

    clock.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    restore_layout()
    model.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    return FitResult(
        model=model,
        history=history,
        best_epoch=int(early["best_epoch"]),
        best_metric=float(early["best"]),
        stopped_early=stopped_early,
        images_per_s=images / train_s if train_s else 0.0,
        train_s=train_s,
        precision=recipe.precision,
        spent=clock.report(len(history)),
    )


def _position(clock: Clock, step: int, total_steps: int, reserve_s: float) -> tuple[int, int]:
    """The schedule step to read now and whether the budget is spent (1) or not (0).

    Without a budget that is the step count itself; with one, the same share of the schedule's steps
    as of the budget's time has elapsed.
    """
    if clock.budget_s is None:
        return step, 0
    return int(clock.progress(step, total_steps) * total_steps), int(clock.out_of_time(reserve_s))


def _step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: LossFn,
    recipe: TrainConfig,
    device: torch.device,
    data: Batches,
    batch: torch.Tensor,
    rank: int,
    world: int,
    totals: torch.Tensor,
    size: int | None = None,
) -> None:
    """One optimizer step over one global batch: this rank's shard, in ``grad_accum`` micro-batches
    (images scaled to ``size`` x ``size`` where given: progressive resizing)."""
    shard = torch.tensor_split(batch, world)[rank]
    micro = torch.tensor_split(shard, recipe.grad_accum)
    optimizer.zero_grad(set_to_none=True)
    for index, part in enumerate(micro):
        inputs = data.inputs(part, train=True)
        if size is not None:
            inputs = (resized(inputs[0], size), *inputs[1:])
        sync = index == len(micro) - 1 or not isinstance(net, nn.parallel.DistributedDataParallel)
        with nullcontext() if sync else net.no_sync(), _autocast(device, recipe.precision):  # type: ignore[operator]
            logits = net(*inputs)
            loss = criterion(logits, data.labels[part], inputs[0])
        (loss * (len(part) * world / len(batch))).backward()
        with torch.no_grad():
            totals[0] += loss.detach().double() * len(part)
            totals[1] += _correct(logits, data.labels[part])
            totals[2] += len(part)
    if recipe.grad_clip:
        nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
    optimizer.step()


class _Ema:
    """Exponential moving average of the parameters (buffers copied), warmed up as in timm."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        # one multi-tensor kernel per step instead of a Python loop of per-parameter launches
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1.0 - decay)

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def load(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates


def _autocast(device: torch.device, precision: str) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many predictions match, as a device tensor (no host sync)."""
    if logits.shape[1] == 1:
        return ((logits[:, 0] > 0).long() == targets).sum()
    return (logits.argmax(dim=1) == targets).sum()


def _validate(
    model: nn.Module, ema: _Ema | None, scored: nn.Module, data: Batches, num_classes: int, world: int
) -> dict[str, float]:
    """Validate ``scored``, the weights a fit keeps (the average's, with ``ema``), every rank with rank
    0's batch-norm statistics."""
    _sync_buffers(model, world)
    if ema is not None:
        ema.copy_buffers(model)
    return evaluate_split(scored, data, num_classes)


def _sync_buffers(model: nn.Module, world: int) -> None:
    """Give every rank rank 0's batch-norm statistics, so validation agrees everywhere."""
    if world == 1:
        return
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def _epoch_metrics(
    totals: torch.Tensor, world: int, optimizer: torch.optim.Optimizer, seconds: float, n: int
) -> dict[str, float]:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()
    return {
        "train_loss": loss_sum / max(count, 1),
        "train_accuracy": correct / max(count, 1),
        "lr": float(optimizer.param_groups[0]["lr"]),
        "images_per_s": n / seconds if seconds else 0.0,
    }


def evaluate_split(model: nn.Module, data: Batches, num_classes: int) -> dict[str, float]:
    """val_loss (plain cross-entropy), val_accuracy and val_f1_macro of one split, in eval mode."""
    if len(data) == 0:
        return {}
    from dcloop.train._metrics import classification_metrics

    model.eval()
    y = data.labels
    logits = []
    with torch.inference_mode():
        for index in torch.arange(len(data), device=y.device).split(data.eval_batch_size):
            logits.append(model(*data.inputs(index, train=False)).float())
    out = torch.cat(logits)
    if out.shape[1] == 1:
        out = torch.cat([torch.zeros_like(out), out], dim=1)  # sigmoid(l) == softmax([0, l])[1]
    pred = out.argmax(dim=1).cpu().numpy()
    report = classification_metrics(y.cpu().numpy(), pred, None, [str(i) for i in range(num_classes)])
    return {
        "val_loss": float(F.cross_entropy(out, y)),
        "val_accuracy": report["accuracy"],
        "val_f1_macro": report["f1_macro"],
    }
