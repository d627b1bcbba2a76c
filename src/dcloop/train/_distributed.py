"""Data-parallel training through torchrun's elastic launcher.

``launch`` builds a torchrun command line (``--nproc-per-node N`` plus any pass-through options such
as ``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``) that runs ``python -m dcloop.train._worker`` and
hands it to ``torch.distributed.run``, so single-node and multi-node runs behave exactly as torchrun.
The launcher runs in this process and sets its own handlers of SIGTERM, SIGINT, SIGHUP and SIGQUIT
(to stop the workers); the caller's handlers are back once it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from dcloop._signals import signal_handlers
from dcloop.errors import TrainError

log = logging.getLogger(__name__)
WORKER = "dcloop.train._worker"


def rank_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def torchrun_args(root: Path, run_id: str, resume: bool, nproc: int, launch_args: Sequence[str]) -> list[str]:
    """The torchrun argument list; a single node without rendezvous options runs --standalone."""
    args = [f"--nproc-per-node={nproc}", *launch_args]
    if not any(
        a.startswith(("--nnodes", "--rdzv", "--master", "--node-rank", "--standalone")) for a in launch_args
    ):
        args.append("--standalone")
    args += ["-m", WORKER, "--workspace", str(root), "--run-id", run_id]
    return [*args, "--resume"] if resume else args


def check_launch(nproc: int, launch_args: Sequence[str]) -> None:
    """Reject bad torchrun options before a run is opened (torchrun's own parser decides)."""
    from torch.distributed.run import config_from_args, get_args_parser

    argv = torchrun_args(Path("."), "check", False, nproc, launch_args)
    try:
        config_from_args(get_args_parser().parse_args(argv))
    except SystemExit as exc:  # argparse rejects an unknown option or a bad value
        raise TrainError(
            f"torchrun rejected the launch options {list(launch_args)} (exit {exc.code})."
        ) from None
    except (RuntimeError, ValueError) as exc:
        raise TrainError(f"torchrun rejected the launch options {list(launch_args)}: {exc}.") from None


def launch(root: Path, run_id: str, resume: bool, nproc: int, launch_args: Sequence[str]) -> None:
    """Run the workers and wait; any worker failure becomes one TrainError."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    argv = torchrun_args(root, run_id, resume, nproc, launch_args)
    log.info("torchrun %s", " ".join(argv))
    try:
        with signal_handlers(("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")):  # the launcher takes them over
            run(get_args_parser().parse_args(argv))
    except ChildFailedError as exc:
        first = next(iter(exc.failures.values()), None)
        detail = first.message if first is not None and first.message else str(exc).strip().splitlines()[0]
        raise TrainError(
            f"Distributed training of run {run_id[:12]} failed: {detail}".rstrip(".") + "."
        ) from None
