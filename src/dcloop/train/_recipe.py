"""The interchangeable parts of a recipe: optimizers, learning-rate schedules and losses.

Each family is a Registry, so an unknown name fails up front with a close-match suggestion. A
schedule is a small object that gives the learning-rate multiplier for each optimizer step (and may
react to the monitored validation metric at the end of an epoch); its state is plain numbers, so a
checkpoint holds it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dcloop.errors import ConfigError
from dcloop.registry import Registry

OptimizerBuilder = Callable[..., torch.optim.Optimizer]
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]

optimizers: Registry[OptimizerBuilder] = Registry("optimizer")
schedules: Registry[Callable[..., Schedule]] = Registry("schedule")
losses: Registry[Callable[..., LossFn]] = Registry("loss")


# -- optimizers ------------------------------------------------------------------------------------
# Every optimizer runs fused: one kernel updates all parameters of a group on CPU and CUDA alike
# (AdamW's step on resnet-s w16 measured 10-18x faster than the multi-tensor `foreach` kernels on CPU).


def _param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """No weight decay on biases and norm scales (1-D tensors): decaying them only hurts.

    ``layer_decay`` < 1 (layer-wise learning-rate decay, Clark et al. 2020): a parameter ``k`` layers
    below the head learns at ``layer_decay**k`` times the rate (``lr_scale``), so fine-tuning moves the
    pretrained lower layers least. The model says each parameter's depth with ``layer_of(name)``.
    """
    if layer_decay == 1.0:
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    layer_of = getattr(model, "layer_of", None)
    if layer_of is None:
        raise ConfigError(
            f"`train.layer_decay` needs a layered text model; {type(model).__name__} has no layers. Set it to 1."
        )
    top = int(model.num_layers) + 1  # type: ignore[arg-type]
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth, decays = layer_of(name), param.ndim > 1
        group = groups.setdefault(
            (depth, decays),
            {
                "params": [],
                "weight_decay": weight_decay if decays else 0.0,
                "lr_scale": layer_decay ** (top - depth),
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


@optimizers.register("sgd")
def _sgd(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    layer_decay: float = 1.0,
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        _param_groups(model, weight_decay, layer_decay),
        lr=lr,
        momentum=momentum,
        nesterov=nesterov and momentum > 0,
        fused=True,
    )


@optimizers.register("adam")
def _adam(
    model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0, **_: Any
) -> torch.optim.Optimizer:
    return torch.optim.Adam(_param_groups(model, weight_decay, layer_decay), lr=lr, fused=True)


@optimizers.register("adamw")
def _adamw(
    model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0, **_: Any
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_param_groups(model, weight_decay, layer_decay), lr=lr, fused=True)


def build_optimizer(
    name: str,
    model: nn.Module,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    layer_decay: float = 1.0,
) -> torch.optim.Optimizer:
    optimizer = optimizers.get(name)(
        model, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, layer_decay=layer_decay
    )
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return optimizer


# -- schedules -------------------------------------------------------------------------------------


class Schedule(Protocol):
    """Learning-rate multiplier per optimizer step; ``epoch_end`` sees the monitored metric."""

    def factor(self, step: int) -> float: ...

    def epoch_end(self, metric: float) -> None: ...

    def state_dict(self) -> dict[str, float]: ...

    def load_state_dict(self, state: dict[str, float]) -> None: ...


class _Stateless:
    def epoch_end(self, metric: float) -> None:
        return None

    def state_dict(self) -> dict[str, float]:
        return {}

    def load_state_dict(self, state: dict[str, float]) -> None:
        return None


class _Constant(_Stateless):
    def factor(self, step: int) -> float:
        return 1.0


class _Step(_Stateless):
    def __init__(self, steps_per_epoch: int, step_size: int, gamma: float) -> None:
        self.every, self.gamma = steps_per_epoch * step_size, gamma

    def factor(self, step: int) -> float:
        return float(self.gamma ** (step // self.every))


class _Cosine(_Stateless):
    def __init__(self, total_steps: int) -> None:
        self.total = max(total_steps, 1)

    def factor(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))


class _Linear(_Stateless):
    """Straight down from the peak to 0 at the last step (BERT's fine-tuning schedule)."""

    def __init__(self, total_steps: int) -> None:
        self.total = max(total_steps, 1)

    def factor(self, step: int) -> float:
        return max(0.0, 1.0 - min(step, self.total) / self.total)


class _OneCycle(_Stateless):
    """Cosine up from lr/25 over the first 30% of steps, then cosine down to lr/1e4 (as torch's OneCycleLR)."""

    def __init__(
        self, total_steps: int, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4
    ) -> None:
        self.last, self.peak = max(total_steps - 1, 1), max(pct_start * total_steps - 1, 1.0)
        self.start, self.end = 1.0 / div, 1.0 / (div * final_div)

    def factor(self, step: int) -> float:
        if step <= self.peak:
            return _cos_between(self.start, 1.0, step / self.peak)
        return _cos_between(1.0, self.end, min((step - self.peak) / max(self.last - self.peak, 1.0), 1.0))


def _cos_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


class _Plateau:
    """Multiply by ``gamma`` after ``patience`` epochs without improvement of the monitored metric."""

    def __init__(self, gamma: float, patience: int, mode: str) -> None:
        self.gamma, self.patience, self.sign = gamma, patience, 1.0 if mode == "max" else -1.0
        self.state = {"scale": 1.0, "best": -math.inf, "bad": 0.0}

    def factor(self, step: int) -> float:
        return self.state["scale"]

    def epoch_end(self, metric: float) -> None:
        if self.sign * metric > self.state["best"]:
            self.state.update(best=self.sign * metric, bad=0.0)
            return
        self.state["bad"] += 1
        if self.state["bad"] > self.patience:
            self.state.update(scale=self.state["scale"] * self.gamma, bad=0.0)

    def state_dict(self) -> dict[str, float]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.state = {k: float(v) for k, v in state.items()}


class _Warmup:
    """Linear warmup over the first ``warmup`` steps in front of any schedule."""

    def __init__(self, inner: Schedule, warmup: int) -> None:
        self.inner, self.warmup = inner, warmup

    def factor(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup) * self.inner.factor(step)

    def epoch_end(self, metric: float) -> None:
        self.inner.epoch_end(metric)

    def state_dict(self) -> dict[str, float]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.inner.load_state_dict(state)


schedules.register("constant")(lambda **_: _Constant())
schedules.register("step")(
    lambda steps_per_epoch, step_size, gamma, **_: _Step(steps_per_epoch, step_size, gamma)
)
schedules.register("cosine")(lambda total_steps, **_: _Cosine(total_steps))
schedules.register("linear")(lambda total_steps, **_: _Linear(total_steps))
schedules.register("onecycle")(lambda total_steps, **_: _OneCycle(total_steps))
schedules.register("plateau")(lambda gamma, patience, mode, **_: _Plateau(gamma, patience, mode))


def build_schedule(
    name: str,
    *,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float,
    step_size: int,
    gamma: float,
    patience: int,
    mode: str,
) -> Schedule:
    schedule = schedules.get(name)(
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * epochs,
        step_size=step_size,
        gamma=gamma,
        patience=patience,
        mode=mode,
    )
    warmup = round(warmup_epochs * steps_per_epoch)
    return _Warmup(schedule, warmup) if warmup > 0 else schedule


# -- losses ----------------------------------------------------------------------------------------


@losses.register("cross_entropy")
def _cross_entropy(label_smoothing: float, **_: Any) -> LossFn:
    def loss(logits: Tensor, targets: Tensor, images: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

    return loss


@losses.register("bce")
def _bce(label_smoothing: float, **_: Any) -> LossFn:
    """Binary cross-entropy: one logit against the label, or one sigmoid per logit against one-hot."""

    def loss(logits: Tensor, targets: Tensor, images: Tensor) -> Tensor:
        logits = logits.float()
        if logits.shape[1] == 1:
            goal = targets.float().unsqueeze(1)
        else:
            goal = F.one_hot(targets, logits.shape[1]).float()
        goal = goal * (1.0 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits, goal)

    return loss


@losses.register("mse")
def _mse(**_: Any) -> LossFn:
    """Mean squared error between softmax probabilities and the one-hot label."""

    def loss(logits: Tensor, targets: Tensor, images: Tensor) -> Tensor:
        probs = logits.float().softmax(dim=1)
        return F.mse_loss(probs, F.one_hot(targets, logits.shape[1]).float())

    return loss


def build_loss(name: str, label_smoothing: float) -> LossFn:
    return losses.get(name)(label_smoothing=label_smoothing)


def check_names(model: str, optimizer: str, schedule: str, loss: str, known_models: Iterable[str]) -> None:
    """Fail before any work starts when a recipe names a part that does not exist."""
    from dcloop.errors import unknown_name

    if model not in set(known_models):
        raise unknown_name("model", model, known_models)
    optimizers.get(optimizer)
    schedules.get(schedule)
    losses.get(loss)


def registry_names() -> dict[str, list[str]]:
    """The names of every registry a config field refers to, by kind (what `config.check_names` takes)."""
    from dcloop.train._models import list_models

    return {
        "model": list(list_models()),
        "optimizer": optimizers.names(),
        "schedule": schedules.names(),
        "loss": losses.names(),
    }
