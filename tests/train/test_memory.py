"""Training keeps freed memory in the process: a step's activations reuse the last step's pages.

Each case runs in its own interpreter: malloc's thresholds are process-wide and set once.
Page faults are counted (getrusage), not timed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.train._models import create_model

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

STEPS = """
import json, resource, sys, torch
from dcloop.train._memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.set_num_threads(1)
from dcloop.train import create_model
model = create_model("resnet-s", 1, 10, 28, width=16)
x = torch.rand(64, 1, 28, 28)
def step():
    model(x).sum().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"kept": kept, "faults": faults}))
"""


def run_steps(mode: str, **env: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", STEPS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        timeout=300,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_kept_memory_takes_training_steps_without_page_faults() -> None:
    plain, kept = run_steps("plain"), run_steps("keep")
    assert kept["kept"] is True
    # batch 64 of 28x28 at width 16: activations of 0.8-3.2 MB, thousands of 4 KiB pages a step
    assert plain["faults"] > 1000
    assert kept["faults"] < plain["faults"] / 10


@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"DCLOOP_KEEP_FREED_MEMORY": "0"},
    ],
)
def test_a_threshold_the_user_set_or_opting_out_leaves_malloc_alone(env: dict[str, str]) -> None:
    assert run_steps("keep", **env)["kept"] is False


def test_training_on_cpu_keeps_freed_memory(
    blob_data: PreparedDataset, fast_recipe: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcloop.train import _loop

    calls: list[bool] = []

    def keep() -> bool:
        calls.append(True)
        return True

    monkeypatch.setattr(_loop, "keep_freed_memory", keep)
    recipe = fast_recipe.model_copy(update={"epochs": 1})
    _loop.fit_model(create_model(recipe.model, 1, blob_data.num_classes, 20), blob_data, recipe)
    assert calls == [True]
