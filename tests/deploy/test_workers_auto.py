"""`serve.workers: auto`: one server process per usable CPU core (affinity, cgroup v2 quota), at most
AUTO_SERVE_WORKERS; a number is taken as it is; anything else is refused by the config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dcloop.config import AUTO_SERVE_WORKERS, ServeConfig
from dcloop.deploy._launch import resolve_workers, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def _cgroup(tmp_path: Path, text: str | None) -> Path:
    if text is not None:
        (tmp_path / "cpu.max").write_text(text, encoding="utf-8")
    return tmp_path


@given(quota=st.integers(1, 10_000_000), period=st.integers(1_000, 1_000_000))
def test_a_cpu_quota_caps_the_cores_rounding_up(tmp_path_factory, quota: int, period: int) -> None:
    folder = _cgroup(tmp_path_factory.mktemp("cg"), f"{quota} {period}\n")
    assert usable_cpus(folder) == min(AFFINITY, -(-quota // period))


@pytest.mark.parametrize("text", [None, "max 100000\n", "", "garbage\n", "x y\n", "0 100000\n", "5 0\n"])
def test_no_quota_or_an_unreadable_one_leaves_the_affinity(tmp_path: Path, text: str | None) -> None:
    assert usable_cpus(_cgroup(tmp_path, text)) == AFFINITY


@pytest.mark.parametrize(
    ("quota", "period", "cores"), [("150000", "100000", 2), ("100000", "100000", 1), ("-1", "100000", None)]
)
def test_a_cgroup_v1_quota_counts_too(tmp_path: Path, quota: str, period: str, cores: int | None) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n", encoding="utf-8")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n", encoding="utf-8")
    assert usable_cpus(tmp_path) == (AFFINITY if cores is None else min(AFFINITY, cores))


def test_auto_is_the_usable_cores_at_most_the_cap_and_a_number_is_kept() -> None:
    assert resolve_workers("auto") == min(usable_cpus(), AUTO_SERVE_WORKERS) >= 1
    assert resolve_workers(3) == 3
    assert ServeConfig().workers == "auto"


@pytest.mark.parametrize("bad", [0, 65, "all", -2, 2.5])
def test_the_config_refuses_other_values(bad) -> None:
    with pytest.raises(ValidationError):
        ServeConfig(workers=bad)
