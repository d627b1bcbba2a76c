"""Checkpoints are complete or absent, and hold RNG state that restores exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dcloop.train import _checkpoint as ckpt


def _weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), value), "b": torch.zeros(2)}


def test_latest_points_at_the_newest_complete_epoch(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    assert ckpt.latest_checkpoint(folder) is None
    ckpt.save_checkpoint(folder, 1, _weights(1.0), None, {"history": [{"loss": 1.0}]})
    ckpt.save_checkpoint(folder, 2, _weights(2.0), _weights(1.0), {"history": [{"loss": 1.0}, {"loss": 0.5}]})
    latest = ckpt.latest_checkpoint(folder)
    assert latest is not None and latest.name == "epoch-0002"
    weights, best, state = ckpt.load_checkpoint(latest)
    assert (
        torch.equal(weights["w"], _weights(2.0)["w"])
        and best is not None
        and torch.equal(best["w"], _weights(1.0)["w"])
    )
    assert state["epoch"] == 2 and state["history"][-1] == {"loss": 0.5}
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0002", "latest"]  # older epochs dropped


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    ckpt.save_checkpoint(folder, 1, _weights(1.0), None, {"note": "ok"})
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an unpicklable object
        ckpt.save_checkpoint(folder, 2, _weights(2.0), None, {"bad": lambda: None})
    latest = ckpt.latest_checkpoint(folder)
    assert latest is not None and latest.name == "epoch-0001"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001", "latest"]  # no staging folder left


def test_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    ckpt.save_checkpoint(tmp_path, 1, _weights(0.0), None, {"rng": ckpt.rng_state()})
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    _, _, state = ckpt.load_checkpoint(tmp_path / "epoch-0001")
    ckpt.set_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
