"""`dcloop data ...`: import sources, prepare versions, list and show them."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Import sources and prepare versioned data sets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
