"""Scaling on a simulated cluster, and the planner's projection of the same job to 8 and 64 GPU nodes.

Usage: python benchmarks/cluster_scaling.py [--model seed-cnn] [--epochs 3] [--repeats 1]
       [--gpu h100-sxm] [--link-gbps 400] [--latency-us 10] [--mfu 0.10] [--counts 8,64]

Measured (real cat-vs-dog Animal-MNIST, the default recipe for --model with --epochs), each layout on
a fresh loopback cluster of this machine, with `train_on_cluster` as `dcloop train --cluster` runs it:
  * two 1-CPU nodes, 2 workers (1 thread each): the workers talk over TCP between two raylets;
  * one 2-CPU node, 2 workers (1 thread each);
  * one 2-CPU node, 1 worker with 2 threads.
Each run's time is split from the timestamps in its record: scheduling (the driver's submit to the
first worker's first optimizer step), compute (fit_model's training time less communication),
communication (rank 0's gradient allreduces, timed around DDP's allreduce by a communication hook:
wire time plus waiting for the other rank) and the rest (validation, checkpoints, test, teardown).
The two "nodes" share this machine's 2 cores, so this shows the costs' shape, not a real network.

Projected: the planner (`dcloop.plan.plan_training`) prices the same job, with the model's measured
training FLOPs per image and the images it trains on, on --counts nodes of one --gpu each. The
planner has no network term, so a ring allreduce of the fp32 gradients per step over --link-gbps
with --latency-us per hop is added here, folded into the utilization the planner is given.
Prints tables; asserts nothing. Absolute times depend on the machine's load; compare within one run.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster_overhead import free_port, join_node, print_rows, workspace

LAYOUTS = (  # name, CPUs of each node, workers, threads (and CPUs) per worker
    ("2 nodes x 1 CPU, 2 workers", (1, 1), 2, 1),
    ("1 node x 2 CPUs, 2 workers", (2,), 2, 1),
    ("1 node x 2 CPUs, 1 worker x 2 threads", (2,), 1, 2),
)


def measure(ws: Any, nodes: tuple[int, ...], workers: int, threads: int) -> tuple[Any, dict[str, float]]:
    """Run the job on a fresh cluster of ``nodes``; the run and its time split."""
    from dcloop.cluster import cluster_down, cluster_up, train_on_cluster
    from dcloop.cluster._local import stop_group

    head = cluster_up(ws, num_cpus=nodes[0], port=free_port())
    joined: list[int] = []
    try:
        with tempfile.TemporaryDirectory(dir="/tmp", prefix="dcloop-n") as folder:
            joined = [join_node(head, Path(folder), f"n{i}", cpus) for i, cpus in enumerate(nodes[1:])]
            update = {"num_workers": workers, "min_workers": None, "cpus_per_worker": float(threads)}
            settings = ws.config.cluster.model_copy(update=update)
            start = time.perf_counter()
            run = train_on_cluster(
                ws, ws.config.train.model_copy(update={"threads": threads}), settings=settings
            )
            wall = time.perf_counter() - start
    finally:
        for pgid in joined:
            stop_group(pgid)
        cluster_down(ws)
    return run, split(run, wall)


def split(run: Any, wall: float) -> dict[str, float]:
    """Scheduling, compute, communication and the rest of a finished cluster run's wall time."""
    from dcloop.cluster._train import attempts

    info = run.lineage["cluster"]
    rank0 = next(r for r in attempts(Path(run.path), info["launch"])[-1] if r["rank"] == 0)
    scheduling = rank0["marks"]["first_step"] - info["marks"]["submitted"]
    comm = rank0.get("comm_s", 0.0)
    train = run.metrics["train_s"]
    return {
        "wall": wall,
        "scheduling": scheduling,
        "compute": train - comm,
        "comm": comm,
        "rest": wall - scheduling - train,
        "nodes": len(info["nodes"]),
        "accuracy": run.metrics["accuracy"],
    }


def job_size(ws: Any, run: Any) -> dict[str, float]:
    """The model's parameters and training FLOPs per image (one forward and backward, counted by
    torch's FlopCounterMode), and the images and optimizer steps of the run."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dcloop.data import load_dataset
    from dcloop.train._trained import load_model

    model, spec = load_model(Path(run.path))
    model.train()
    images = torch.rand(1, *spec["input"]["shape"][1:])
    with FlopCounterMode(display=False) as counter:
        model(images).sum().backward()
    train_images = len(load_dataset(ws, run.dataset_id).splits["train"])
    epochs = run.metrics["epochs_run"]
    batch = run.config["batch_size"]
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "flops_per_image": float(counter.get_total_flops()),
        "images": float(train_images * epochs),
        "steps": float(math.ceil(train_images / batch) * epochs),
        "batch": float(batch),
    }


def projection(size: dict[str, float], counts: list[int], gpu: str, link_gbps: float, latency_us: float, mfu: float, hour_usd: float) -> list[list[Any]]:  # fmt: skip
    """The planner's time, energy and cost of the job on ``counts`` nodes of one ``gpu``, with a ring
    allreduce of the fp32 gradients each step added to its compute time."""
    from dcloop.plan import TrainingSpec, params_only, plan_training

    # the planner prices 6·N FLOPs per item: N is chosen so that 6·N is the measured FLOPs per image
    model = params_only(size["flops_per_image"] / 6, name="measured job (FLOP-equivalent N)")
    rows = []
    for count in counts:
        compute = plan_training(TrainingSpec(model=model, tokens=size["images"], accelerator=gpu, count=count, utilization=mfu, accelerator_hour_usd=hour_usd))  # fmt: skip
        per_step = 2 * (count - 1) / count * 4 * size["params"] * 8 / (link_gbps * 1e9)
        comm = size["steps"] * (per_step + 2 * (count - 1) * latency_us * 1e-6)
        effective = mfu * compute.steady_wall_s / (compute.steady_wall_s + comm)
        plan = plan_training(TrainingSpec(model=model, tokens=size["images"], accelerator=gpu, count=count, utilization=effective, accelerator_hour_usd=hour_usd))  # fmt: skip
        rows += [
            [f"{count} x {gpu}: compute (planner, MFU {mfu:g})", f"{compute.steady_wall_s * 1e3:.2f}", "ms"],
            [f"{count} x {gpu}: allreduce ({size['steps']:.0f} steps)", f"{comm * 1e3:.2f}", f"ms, {size['batch'] / count:g} images per GPU per step"],
            [f"{count} x {gpu}: whole run (planner)", f"{plan.wall_s * 1e3:.2f}", f"ms at goodput {plan.spec.run_goodput:g}, effective MFU {effective:.2g}"],
            [f"{count} x {gpu}: energy / cost", f"{plan.energy_facility_kwh * 1e3:.3f}", f"Wh, ${plan.cost_usd:.6f} ({plan.summary()['cost_covers']})"],
        ]  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seed-cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per layout; the fastest is shown")
    parser.add_argument("--gpu", default="h100-sxm")
    parser.add_argument("--link-gbps", type=float, default=400.0, help="per node (InfiniBand NDR: 400)")
    parser.add_argument("--latency-us", type=float, default=10.0, help="per ring hop")
    parser.add_argument("--mfu", type=float, default=0.10, help="compute utilization of one GPU")
    parser.add_argument("--counts", default="8,64")
    parser.add_argument("--gpu-hour-usd", type=float, default=0.0, help="rental price (0: electricity only)")
    args = parser.parse_args()
    print(f"{'measure':<44}  {'value':>12}  note", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = workspace(Path(tmp) / "ws", args.model, args.epochs, 1)
        for name, nodes, workers, threads in LAYOUTS:
            tries = [measure(ws, nodes, workers, threads) for _ in range(args.repeats)]
            run, t = min(tries, key=lambda pair: pair[1]["wall"])  # the least disturbed by the load
            print_rows([
                [name, f"{t['wall']:.1f}", f"s wall on {t['nodes']:.0f} node(s), accuracy {t['accuracy']:.4f}, fastest of {args.repeats}"],
                ["  scheduling (submit -> first step)", f"{t['scheduling']:.1f}", "s"],
                ["  compute (training less allreduce)", f"{t['compute']:.1f}", "s"],
                ["  communication (allreduce, rank 0)", f"{t['comm']:.1f}", "s"],
                ["  rest (validation, checkpoints, test, teardown)", f"{t['rest']:.1f}", "s"],
            ])  # fmt: skip
        size = job_size(ws, run)  # the last layout's run: the same job as the others
        print_rows([
            ["model parameters", f"{size['params']:.0f}", ""],
            ["training FLOPs per image", f"{size['flops_per_image']:.3g}", "forward + backward, FlopCounterMode"],
            ["images trained on", f"{size['images']:.0f}", f"{size['steps']:.0f} steps of {size['batch']:.0f}"],
        ])  # fmt: skip
        counts = [int(c) for c in args.counts.split(",")]
        print(f"projection: 1 {args.gpu} per node, ring allreduce of fp32 gradients at {args.link_gbps:g} Gb/s and {args.latency_us:g} us per hop, MFU {args.mfu:g}, the same global batch", flush=True)  # fmt: skip
        print_rows(projection(size, counts, args.gpu, args.link_gbps, args.latency_us, args.mfu, args.gpu_hour_usd))  # fmt: skip


if __name__ == "__main__":
    main()
