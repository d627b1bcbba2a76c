"""How fast a text run trained, against this machine's measured peak and the planner's estimate.

Model FLOPs utilization (MFU) = tokens/s x model FLOPs per token / peak FLOP/s. The peak is measured
here (a large fp32 matmul, the best of a few tries), not read from a catalog: a CPU's sustained rate
depends on its vector units, clocks and the threads torch uses. The planner (dcloop.plan) is asked
about the same job on a catalog entry for this CPU at that peak, so a run report shows what
`dcloop plan train` would have predicted beside what the run measured.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import psutil
import torch


@functools.cache
def measured_peak_flops(threads: int, size: int = 1024, repeats: int = 5) -> float:
    """Sustained fp32 matmul FLOP/s of this machine with ``threads`` torch threads (cached)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm the kernels and caches
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2 * size**3 / best


def throughput(tokens_per_s: float, flops_per_token: float, threads: int) -> dict[str, float]:
    """tokens/s, model FLOPs per token, achieved model FLOP/s, measured peak and their ratio (MFU)."""
    peak = measured_peak_flops(threads)
    achieved = tokens_per_s * flops_per_token
    return {
        "tokens_per_s": tokens_per_s,
        "model_flops_per_token": flops_per_token,
        "model_flops_per_s": achieved,
        "measured_peak_flops_per_s": peak,
        "mfu": achieved / peak if peak else 0.0,
    }


def plan_estimate(params: float, tokens: float, peak_flops: float) -> dict[str, Any]:
    """`dcloop plan train`'s answer for training ``params`` on ``tokens`` on one CPU at ``peak_flops``
    (fp32, the planner's default utilization and goodput; only its time is read, so the power given
    for its energy figures is a placeholder)."""
    from dcloop.plan import TrainingSpec, load_catalog, params_only, plan_training

    memory = psutil.virtual_memory().total / 1e9
    cpu = {
        "name": "this-cpu",
        "label": "this machine's CPU (measured fp32 matmul peak)",
        "tflops": {"fp32": peak_flops / 1e12},
        "memory_gb": memory,
        "memory_bw_gbs": 20.0,  # unused by a compute-bound plan; a typical DDR4 channel pair
        "source": "measured by dcloop.train at the end of the run",
    }
    spec = TrainingSpec(
        model=params_only(params, "run"),
        tokens=tokens,
        accelerator="this-cpu",
        count=1,
        precision="fp32",
        power_w=100.0,
    )
    plan = plan_training(spec, load_catalog([cpu]))
    return {"plan_wall_s": plan.wall_s, "plan_steady_s": plan.steady_wall_s, "plan_mfu": plan.mfu}


def text_fit_figures(
    model: torch.nn.Module,
    epoch_tokens: int,
    epoch_texts: int,
    texts_per_s: float,
    epochs: int,
    threads: int,
    lora: bool,
) -> dict[str, float]:
    """What a text run records beside its fit: parameters (all, trainable, non-embedding), tokens/s,
    model FLOPs per token, the share of this machine's measured peak (MFU), and the planner's wall
    time for the same tokens (``plan_wall_s``, to set beside the run's ``train_s``)."""
    from dcloop.train._finetune import parameter_counts, train_flops_per_token

    counts = parameter_counts(model)
    mean_tokens = epoch_tokens / max(epoch_texts, 1)
    figures: dict[str, float] = {**counts, "trainable_share": counts["trainable_params"] / counts["params"]}
    figures |= throughput(texts_per_s * mean_tokens, train_flops_per_token(counts, lora), threads)
    figures |= plan_estimate(
        counts["matmul_params"], epoch_tokens * epochs, figures["measured_peak_flops_per_s"]
    )
    return figures
