"""Time budgets and accuracy targets: the schedule follows the budget, runs stop where they should,
the run record says how the time went, and a resumed run continues its budget.

The budget's clock is replaced by one that advances a fixed tick per reading, so where a run stops
depends on the number of steps taken, not on how busy the machine is.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from dcloop import config, progress
from dcloop.config import TrainConfig, parse_duration
from dcloop.data import PreparedDataset
from dcloop.errors import ConfigError
from dcloop.train import _budget, fit_model
from dcloop.train._models import create_model
from dcloop.train._recipe import build_schedule


class _Ticks:
    """A perf_counter that advances ``tick`` seconds per reading."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> _Ticks:
    ticks = _Ticks(0.01)
    monkeypatch.setattr(_budget, "time", SimpleNamespace(perf_counter=ticks.perf_counter))
    return ticks


def _fit(data: PreparedDataset, recipe: TrainConfig, **kw):
    return fit_model(create_model(recipe.model, 1, data.num_classes, 20), data, recipe, **kw)


def _recipe(**update) -> TrainConfig:
    base = {"model": "tiny-cnn", "epochs": 2, "batch_size": 16, "lr": 0.01, "threads": 2, "ema_decay": 0.0}
    return TrainConfig(**(base | update))


@given(st.integers(min_value=1, max_value=10**6))
def test_durations_parse_in_seconds_minutes_and_hours(n: int) -> None:
    assert parse_duration(str(n)) == parse_duration(f"{n}s") == n
    assert parse_duration(f"{n}m") == 60 * n
    assert parse_duration(f"{n}h") == 3600 * n
    assert parse_duration(f"{n}m30s") == 60 * n + 30


@pytest.mark.parametrize("bad", ["abc", "", "5 minutes", "-5", "0", "1x"])
def test_a_bad_budget_is_one_config_error_naming_the_field(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"`train\.budget_s` in dcloop\.yaml must .*Got"):
        config.validate({"train": {"budget_s": bad}})


def test_the_budget_not_epochs_sets_the_length_and_the_schedule_anneals_within_it(
    blob_data: PreparedDataset, ticking: _Ticks
) -> None:
    recipe = _recipe(budget_s=4.0)
    result = _fit(blob_data, recipe)
    spent = result.spent
    assert spent["stopped_by"] == "budget" and spent["budget_s"] == 4.0
    # 144 training images in batches of 16: 9 steps an epoch; the budget outlasts the 2 epochs
    assert len(result.history) > recipe.epochs == 2
    assert spent["epochs"] == len(result.history)
    # stopped within one step and one closing validation of the budget, never far past it
    assert 4.0 - 0.2 <= spent["elapsed_s"] <= 4.0 + 0.2
    # one-cycle followed the budget's share: warm-up early, annealed to near nothing at the end
    lrs = [h["lr"] for h in result.history]
    assert max(lrs) > 0.5 * recipe.lr and lrs[-1] < 0.05 * recipe.lr
    assert lrs.index(max(lrs)) < len(lrs) - 1
    assert result.history[-1]["val_accuracy"] >= 0.9


def test_a_budgeted_run_with_progress_bars_on_shows_the_seconds_of_its_budget(
    blob_data: PreparedDataset, ticking: _Ticks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in a terminal: the bar of a budgeted run counts seconds of the budget, not steps of epochs
    out = io.StringIO()
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(progress, "_console", Console(file=out, force_terminal=True, width=120))
    result = _fit(blob_data, _recipe(budget_s=4.0))
    assert result.spent["stopped_by"] == "budget"
    assert re.search(r"\b\d/4 s\b", out.getvalue()) and "epoch 1" in out.getvalue()


def test_the_schedule_is_read_at_the_elapsed_share_of_the_budget() -> None:
    schedule = build_schedule(
        "onecycle",
        steps_per_epoch=10,
        epochs=3,
        warmup_epochs=0,
        step_size=1,
        gamma=0.1,
        patience=0,
        mode="min",
    )
    clock = _budget.Clock(budget_s=100.0, target=None)
    clock.before = 50.0  # half the budget spent, whatever the step count says
    share = clock.progress(step=1, total_steps=30)
    assert 0.5 <= share < 0.51
    assert clock.progress(step=1, total_steps=30) <= 1.0
    assert schedule.factor(int(share * 30)) == schedule.factor(15)


def test_a_target_accuracy_stops_at_the_first_epoch_that_reaches_it(blob_data: PreparedDataset) -> None:
    recipe = _recipe(epochs=30, target_accuracy=0.9)
    result = _fit(blob_data, recipe)
    accuracies = [h["val_accuracy"] for h in result.history]
    assert accuracies[-1] >= 0.9 and all(a < 0.9 for a in accuracies[:-1])
    assert len(result.history) < 30
    spent = result.spent
    assert spent["stopped_by"] == "target"
    reached = spent["to_target"]
    assert reached["epoch"] == len(result.history) and reached["val_accuracy"] == accuracies[-1]
    assert 0 < reached["s"] <= spent["elapsed_s"]
    assert reached["energy_j"] > 0 and reached["energy_source"]


def test_checks_within_an_epoch_stop_at_the_first_step_that_meets_the_target(
    blob_data: PreparedDataset,
) -> None:
    # 144 training images in batches of 16: 9 steps an epoch, checked after steps 2, 4, 6 and 8
    checks: list[tuple[int, dict[str, float]]] = []
    recipe = _recipe(epochs=30, target_accuracy=0.9, val_every_steps=2)
    result = _fit(blob_data, recipe, on_check=lambda epoch, m: checks.append((epoch, m)))
    reached = result.spent["to_target"]
    assert result.spent["stopped_by"] == "target" and reached["val_accuracy"] >= 0.9
    assert reached["step"] in (2, 4, 6, 8)  # met within an epoch, not at its end
    epoch, last = checks[-1]
    assert epoch == reached["epoch"] == len(result.history) and last["step"] == reached["step"]
    assert last["val_accuracy"] == reached["val_accuracy"] == result.history[-1]["val_accuracy"]
    assert all(m["val_accuracy"] < 0.9 for _, m in checks[:-1])
    first_epoch = [m["step"] for e, m in checks if e == 1]
    assert first_epoch == [2, 4, 6, 8][: len(first_epoch)]
    assert last["epoch_s"] > 0 and result.spent["validate_s"] > 0


def test_without_a_target_checks_within_an_epoch_change_nothing_of_the_training(
    blob_data: PreparedDataset,
) -> None:
    torch.manual_seed(3)  # the same initial weights for both
    plain = _fit(blob_data, _recipe(seed=3))
    checks: list[int] = []
    torch.manual_seed(3)
    checked = _fit(
        blob_data, _recipe(seed=3, val_every_steps=4), on_check=lambda e, m: checks.append(m["step"])
    )
    assert checks == [4, 8, 4, 8]  # two checks in each of the 2 epochs of 9 steps
    for a, b in zip(plain.model.state_dict().values(), checked.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [h["val_accuracy"] for h in plain.history] == [h["val_accuracy"] for h in checked.history]


def test_an_unreached_target_records_no_time_to_it(blob_data: PreparedDataset) -> None:
    result = _fit(blob_data, _recipe(target_accuracy=1.0, lr=1e-6))
    assert result.spent["stopped_by"] == "epochs" and result.spent["to_target"] is None
    assert len(result.history) == 2


def test_the_record_splits_the_time_into_phases(blob_data: PreparedDataset, tmp_path: Path) -> None:
    result = _fit(blob_data, _recipe(), checkpoint_dir=tmp_path / "ckpt")
    spent = result.spent
    assert spent["stopped_by"] == "epochs" and spent["epochs"] == 2
    assert spent["train_s"] > 0 and spent["validate_s"] > 0 and spent["checkpoint_s"] > 0
    assert spent["compile_s"] == 0.0
    phases = spent["train_s"] + spent["validate_s"] + spent["checkpoint_s"]
    assert phases <= spent["elapsed_s"]
    assert spent["train_s"] == pytest.approx(result.train_s)


def test_a_resumed_run_continues_its_budget(
    blob_data: PreparedDataset, ticking: _Ticks, tmp_path: Path
) -> None:
    recipe = _recipe(budget_s=4.0)
    whole = _fit(blob_data, recipe)

    class Killed(Exception):
        pass

    def kill_after_two(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise Killed

    ticking.now = 0.0
    with pytest.raises(Killed):
        _fit(blob_data, recipe, checkpoint_dir=tmp_path, on_epoch=kill_after_two)
    ticking.now = 1000.0  # another process: its clock starts anywhere
    resumed = _fit(blob_data, recipe, checkpoint_dir=tmp_path, resume=True)
    # the resumed run charged the first process's time: it stops at the same total, not 4 s later
    assert resumed.spent["stopped_by"] == "budget"
    assert 4.0 - 0.2 <= resumed.spent["elapsed_s"] <= 4.0 + 0.2
    assert abs(len(resumed.history) - len(whole.history)) <= 1
    assert resumed.spent["train_s"] > resumed.history[0]["epoch_s"]  # the first process's training counts


def test_a_run_resumed_after_it_stopped_at_its_budget_takes_no_more_steps(
    blob_data: PreparedDataset, ticking: _Ticks, tmp_path: Path
) -> None:
    recipe = _recipe(budget_s=2.0)
    first = _fit(blob_data, recipe, checkpoint_dir=tmp_path)
    again = _fit(blob_data, recipe, checkpoint_dir=tmp_path, resume=True)
    assert again.history == first.history
    assert torch.equal(
        next(iter(first.model.state_dict().values())), next(iter(again.model.state_dict().values()))
    )
