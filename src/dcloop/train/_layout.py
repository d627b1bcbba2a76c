"""Channels-last training, except for the convolutions oneDNN's CPU kernels get wrong in that layout.

torch's CPU convolutions run on oneDNN. In oneDNN 3.12 (torch 2.13) the weight gradient of a 1x1
convolution with stride > 1 on a channels-last (NHWC) input goes to the ``jit_1x1`` backward-weights
kernel, which reads and writes past its buffers when the input has fewer channels than one SIMD
block (16 floats on AVX-512, 8 on AVX2): a segfault or ``double free or corruption`` within a few
steps. On AVX-512 it shows with an odd batch and more than one thread; on AVX2 with any batch. A
ResNet's projection shortcut at width 8 is exactly such a convolution, and so is one in a model
pruned to multiples of 8. The same convolution in contiguous (NCHW) layout takes another kernel and
is correct, so those convolutions alone stay contiguous; the rest of the model keeps channels-last.
Reproducer and report: ``benchmarks/onednn_1x1_strided_crash.py``,
``docs/upstream/onednn-1x1-strided-bwd-weights.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)
# the widest fp32 SIMD block oneDNN uses on CPU (AVX-512); AVX2's block of 8 divides it
SIMD_BLOCK = 16


def needs_contiguous(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution whose channels-last weight gradient oneDNN corrupts."""
    if not isinstance(module, nn.Conv2d):
        return False
    strided = any(s > 1 for s in module.stride)
    pointwise = all(k == 1 for k in module.kernel_size)
    return pointwise and strided and (module.in_channels // module.groups) % SIMD_BLOCK != 0


def to_channels_last(model: nn.Module, device: torch.device) -> Callable[[], None]:
    """Convert ``model`` to channels-last in place, keeping the convolutions of ``needs_contiguous``
    contiguous on CPU. Returns a function that takes the exemption hooks off again."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if device.type != "cpu":
        return lambda: None
    kept = [(name, m) for name, m in model.named_modules() if needs_contiguous(m)]
    handles = []
    for _, module in kept:
        module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        handles.append(module.register_forward_pre_hook(_contiguous_input))
    if kept:
        log.info(
            "channels-last training keeps %s contiguous (1x1 strided convolutions with fewer "
            "input channels than a SIMD block crash oneDNN in channels-last)",
            ", ".join(name for name, _ in kept),
        )

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return remove


def _contiguous_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (args[0].contiguous(), *args[1:])
