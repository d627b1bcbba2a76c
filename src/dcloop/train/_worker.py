"""Entry point of one data-parallel worker: ``python -m dcloop.train._worker --workspace W --run-id R``.

torchrun starts one per rank with RANK/WORLD_SIZE/MASTER_ADDR in the environment. Each worker opens
the workspace and the run record its parent created, joins the process group (NCCL on GPUs, gloo on
CPUs) and runs the same training function as an in-process run; rank 0 writes checkpoints, epochs
and the final weights.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dcloop.train._worker")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch
    import torch.distributed as dist

    from dcloop.config import TrainConfig
    from dcloop.data import load_dataset
    from dcloop.store import runs as store_runs
    from dcloop.train._run import run_training
    from dcloop.workspace import open_workspace

    workspace = open_workspace(args.workspace)
    run = store_runs.get_run(workspace.store, args.run_id)
    recipe = TrainConfig.model_validate(run.config)
    use_cuda = torch.cuda.is_available() and recipe.device in ("auto", "cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        recipe = recipe.model_copy(update={"device": f"cuda:{local}"})
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        run_training(workspace, run, load_dataset(workspace, run.dataset_id), recipe, resume=args.resume)
    finally:
        dist.destroy_process_group()


def _exit_now() -> None:
    """End a worker whose work is done and recorded without running C++ static destructors: at
    interpreter teardown torch 2.13 can still hold a joinable thread of the distributed runtime, whose
    destructor aborts the process (SIGABRT, "terminate called without an active exception"), which
    torchrun reports as a failed run. Seen in about 1 of 10 two-process CPU runs on a 2-core machine."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
    _exit_now()
