"""call_isolated: a step in a child process gives the in-process result; a crash is one line."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from dcloop.config import TrainConfig
from dcloop.errors import DataError, TrainError
from dcloop.train._isolated import call_isolated
from dcloop.train._loop import fit_model, seed_everything
from dcloop.train._models import create_model


def _die(sig: int) -> None:
    os.kill(os.getpid(), sig)


def _refuse(name: str) -> None:
    raise DataError(f"`{name}` must be a folder. Got a file.")


def test_isolated_fit_gives_the_same_weights_as_in_process(blob_data) -> None:
    recipe = TrainConfig(model="tiny-cnn", epochs=1, batch_size=25, lr=0.01, threads=2)
    seed_everything(0)
    model = create_model("tiny-cnn", 1, 2, 20)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    isolated = call_isolated("test fit", "no hint", fit_model, model, blob_data, recipe)
    model.load_state_dict(state)
    local = fit_model(model, blob_data, recipe)
    timing = {"images_per_s", "epoch_s"}
    assert [{k: v for k, v in e.items() if k not in timing} for e in isolated.history] == [
        {k: v for k, v in e.items() if k not in timing} for e in local.history
    ]
    for name, value in local.model.state_dict().items():
        assert torch.equal(isolated.model.state_dict()[name], value), name


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_a_child_killed_by_a_signal_is_one_line_naming_the_step(sig: int) -> None:
    with pytest.raises(
        TrainError, match=rf"^The prune fine-tune step was killed by {sig.name} .* Retry with"
    ) as info:
        call_isolated("prune fine-tune", "Retry with `train.threads: 1`.", _die, sig)
    assert "\n" not in str(info.value)


def test_an_exception_in_the_child_comes_back_as_itself() -> None:
    with pytest.raises(DataError, match="`images` must be a folder"):
        call_isolated("import", "", _refuse, "images")
