"""Structured pruning that removes whole channels, then a short fine-tune.

torch-pruning traces the model into a dependency graph, so a removed conv channel also removes the
matching batch-norm entries and the next layer's input channels (residual branches are pruned as
coupled groups). The model really gets smaller: fewer parameters, fewer FLOPs, a smaller ONNX file.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

_MAX_CHANNEL_RATIO = 0.9  # never remove more than this share of a layer's channels
_BISECTIONS = 10  # channel ratio resolution 0.9 / 2**10


@dataclass(frozen=True)
class Pruned:
    model: nn.Module
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    steps: int  # pruned copies tried
    channel_ratio: float  # share of each layer's channels removed

    @property
    def flops_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0


def count_macs_params(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[int, int]:
    """Multiply-accumulates of one image and the parameter count (FLOPs ~= 2 x MACs)."""
    import torch
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return int(macs), int(params)


def prune_channels(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    keep_flops: float,
    norm: str = "l2",
    round_to: int = 1,
) -> Pruned:
    """Remove the weakest channel groups of a copy of ``model`` until its FLOPs are <= ``keep_flops`` of the
    original, keeping channel counts multiples of ``round_to``. The classifier's outputs are never pruned.

    Every layer gives up the same share of its channels, its weakest. FLOPs fall in
    steps as channel counts round, so the ratio is found by bisection: the smallest one whose pruned
    copy meets the FLOPs budget, i.e. the least pruning that does. When multiples of ``round_to``
    cannot meet it (a tiny model), channels are pruned without rounding.
    """
    macs0, params0 = count_macs_params(model, input_shape)
    low, high = 0.0, _MAX_CHANNEL_RATIO
    best = _prune_copy(model, input_shape, high, norm, round_to)
    steps = 1
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        candidate = _prune_copy(model, input_shape, middle, norm, round_to)
        steps += 1
        if count_macs_params(candidate, input_shape)[0] <= keep_flops * macs0:
            high, best = middle, candidate
        else:
            low = middle
    macs, params = count_macs_params(best, input_shape)
    if macs > keep_flops * macs0 and round_to > 1:
        log.info(
            "channel multiples of %d cannot reach %.2f of the FLOPs; pruning without rounding",
            round_to,
            keep_flops,
        )
        return prune_channels(model, input_shape, keep_flops, norm, round_to=1)
    log.info("pruned channels by %.3f: MACs %d -> %d, params %d -> %d", high, macs0, macs, params0, params)
    for parameter in best.parameters():
        parameter.requires_grad_(True)
    return Pruned(best, macs0, macs, params0, params, steps, high)


def _prune_copy(
    model: nn.Module, input_shape: tuple[int, int, int], ratio: float, norm: str, round_to: int
) -> nn.Module:
    import torch
    import torch_pruning as tp
    from torch import nn

    pruned = copy.deepcopy(model).eval()
    head = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1:]
    pruner = tp.pruner.MetaPruner(
        pruned,
        torch.zeros(1, *input_shape),
        importance=tp.importance.GroupMagnitudeImportance(p=1 if norm == "l1" else 2),
        pruning_ratio=ratio,
        iterative_steps=1,
        ignored_layers=head,
        global_pruning=False,  # the same share from every layer: magnitudes of layers do not compare
        round_to=None if round_to == 1 else round_to,
    )
    pruner.step()
    return pruned
