"""Sourced defaults of the planner (assumptions.yaml beside this module): the value and where it comes from."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def _assumptions() -> dict[str, Any]:
    text = resources.files("dcloop.plan").joinpath("assumptions.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def assumed(name: str) -> float:
    """The default value of ``name`` (e.g. ``goodput``)."""
    return float(_assumptions()[name]["value"])


def sources(name: str) -> list[str]:
    """The published figures the default of ``name`` rests on."""
    return [" ".join(str(s).split()) for s in _assumptions()[name]["sources"]]
