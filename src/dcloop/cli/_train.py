"""`dcloop train`, `dcloop evaluate`, `dcloop runs ...`, `dcloop models list`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
