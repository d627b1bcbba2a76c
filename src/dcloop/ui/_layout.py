"""The page shell and the HTML pieces every page uses: key figures, tables, forms. Values are escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

PAGES = [
    ("loop", "/"),
    ("data", "/data"),
    ("runs", "/runs"),
    ("models", "/models"),
    ("monitor", "/monitor"),
    ("serving", "/serving"),
    ("plan", "/plan"),
]


def page(title: str, active: str, body: str, *, writable: bool, notice: str = "") -> str:
    """A whole HTML page: the navigation, an optional notice, then ``body``."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if name == active else ""}>{name.capitalize()}</a>'
        for name, href in PAGES
    )
    mode = "writes need the token" if writable else "read-only (no token set)"
    note = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - dcloop</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/ui.css">'
        '<script src="/static/ui.js" defer></script></head><body>'
        f'<header><span class="brand">dcloop</span><nav>{nav}</nav><span class="mode">{mode}</span></header>'
        f"<main><h1>{escape(title)}</h1>{note}{body}</main></body></html>"
    )


def fmt(value: Any, digits: int = 4) -> str:
    """A cell's text: numbers rounded, times to the second, None as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.2f}%"


def figures(items: Iterable[tuple[str, str, Any]]) -> str:
    """The key figures at the top of a page: (key, label, value); ``data-key`` names each for tests."""
    cells = "".join(
        f'<div class="figure" data-key="{escape(key)}"><span class="value">{escape(fmt(value))}</span>'
        f'<span class="caption">{escape(label)}</span></div>'
        for key, label, value in items
    )
    return f'<section class="figures">{cells}</section>'


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, key: str = "", raw: set[int] | None = None
) -> str:
    """A table; cells in columns ``raw`` are trusted HTML (links, checkboxes), the rest escaped."""
    raw = raw or set()
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{v if i in raw else escape(fmt(v))}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    empty = f'<tr><td colspan="{len(columns)}" class="empty">none yet</td></tr>' if not body else ""
    attr = f' data-table="{escape(key)}"' if key else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table></div>'


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def action_form(
    action: str, label: str, fields: Sequence[tuple[str, str, str]], confirm: str, *, writable: bool
) -> str:
    """A POST form for a change of state: (name, label, value) fields, the token, a confirmation."""
    if not writable:
        return f'<p class="readonly">{escape(label)}: read-only dashboard (start it with the token set).</p>'
    inputs = "".join(
        f'<label>{escape(text)} <input name="{escape(name)}" value="{escape(value)}"></label>'
        for name, text, value in fields
    )
    return (
        f'<form method="post" action="{escape(action)}" class="action" data-confirm="{escape(confirm)}">'
        f'{inputs}<label>token <input name="token" type="password" autocomplete="off"></label>'
        f"<button>{escape(label)}</button></form>"
    )
