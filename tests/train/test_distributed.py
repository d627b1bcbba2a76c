"""Data-parallel training through torchrun: 2 processes match 1 process at the same global batch."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dcloop.config import TrainConfig
from dcloop.errors import TrainError
from dcloop.store import runs as store_runs
from dcloop.train import train
from dcloop.train._distributed import torchrun_args


def test_two_processes_match_one(blob_workspace) -> None:
    # seed-cnn has no batch norm, whose per-shard statistics would differ by design; no augmentation.
    recipe = TrainConfig(
        model="seed-cnn", epochs=2, batch_size=40, lr=3e-3, threads=1, schedule="cosine", precision="fp32"
    )  # fp32: bf16 rounding would differ between per-rank and whole-batch sums
    recipe.augment.enabled = False
    single = train(blob_workspace, recipe)

    def own(signum, frame):  # the caller's handler, which torch's launcher replaces while it runs
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGTERM, own)
    try:
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)}
        double = train(blob_workspace, recipe, nproc=2)
        assert signal.getsignal(signal.SIGTERM) is own, "the caller's SIGTERM handler is back"
        assert {sig: signal.getsignal(sig) for sig in before} == before
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert double.status == "finished" and double.lineage["nproc"] == 2
    a = load_file(str(Path(single.path) / "model.safetensors"))
    b = load_file(str(Path(double.path) / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
    assert [e.epoch for e in store_runs.list_epochs(blob_workspace.store, double.id)] == [1, 2]
    assert double.metrics["accuracy"] == pytest.approx(single.metrics["accuracy"], abs=0.02)


def test_torchrun_arguments_pass_through() -> None:
    local = torchrun_args(Path("/ws"), "abc", False, 2, [])
    assert local[:2] == ["--nproc-per-node=2", "--standalone"]
    assert local[2:] == ["-m", "dcloop.train._worker", "--workspace", "/ws", "--run-id", "abc"]
    multi = torchrun_args(
        Path("/ws"), "abc", True, 4, ["--nnodes=2", "--node-rank=1", "--rdzv-endpoint=h:29400"]
    )
    assert "--standalone" not in multi and "--nnodes=2" in multi and multi[-1] == "--resume"


def test_bad_launch_option_is_one_error(blob_workspace) -> None:
    recipe = TrainConfig(model="tiny-cnn", epochs=1, threads=1)
    with pytest.raises(TrainError, match="torchrun rejected the launch options"):
        train(blob_workspace, recipe, nproc=2, launch_args=["--nnodes=x:y:z"])
    with pytest.raises(TrainError, match="torchrun rejected the launch options"):
        train(blob_workspace, recipe, nproc=2, launch_args=["--no-such-option"])
    assert store_runs.list_runs(blob_workspace.store) == []  # rejected before a run was opened
