"""Help of flags that override a dcloop.yaml field: the field's own description, so the two never drift.

A flag declares ``help=field_help("train.lr")``; commands registered with ``cls=FieldHelp`` replace
that marker with the field's description when help is shown, and only then import the config schema
(pydantic), so starting the CLI stays light.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

_MARK = "config-field:"


def field_help(path: str) -> str:
    """The help marker of a flag that overrides ``section.field`` of dcloop.yaml."""
    return _MARK + path


def resolve(params: list[Any]) -> None:
    """Replace every field marker among ``params``' help texts with that field's description."""
    from dcloop.config import describe

    for param in params:
        text = getattr(param, "help", None)
        if text and text.startswith(_MARK):
            path = text.removeprefix(_MARK)
            param.help = f"{describe(path)} (dcloop.yaml: {path})"


class FieldHelp(TyperCommand):
    """A command whose field-mirroring flags take their help from the config schema."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        resolve(self.params)
        super().format_help(ctx, formatter)
