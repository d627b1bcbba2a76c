"""Self-contained HTML reports with embedded matplotlib figures (no network, no JS needed)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcloop.atomic import write_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.table{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;vertical-align:top}
td{white-space:nowrap} td.text{white-space:normal;text-align:left;max-width:32rem;overflow-wrap:anywhere}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
dl{margin:0;display:grid;grid-template-columns:max-content auto;gap:0 .6rem} dt{color:#555} dd{margin:0}
img{max-width:100%} .muted{color:#777;font-size:.9rem} .alert{color:#b00020;font-weight:600}
"""


@dataclass
class Section:
    """One titled part of a report: paragraphs, tables and figures, in order."""

    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str, css: str = "") -> Section:
        self.parts.append(f'<p class="{css}">{html.escape(text)}</p>')
        return self

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Section:
        """A table; a dict cell shows as field: value lines, a path to a report as a link. A table
        wider than the page scrolls sideways inside it instead of running off the page."""
        # a snake_case header may break after its underscores, so long names do not widen the table
        head = "".join(f"<th>{html.escape(str(c)).replace('_', '_<wbr>')}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f'<div class="table"><table><tr>{head}</tr>{body}</table></div>')
        return self

    def link(self, text: str, target: str | Path) -> Section:
        """A paragraph linking to another report (or any file)."""
        self.parts.append(f"<p>{_link(Path(target), text)}</p>")
        return self

    def figure(self, fig: Any, alt: str = "") -> Section:
        """Embed a matplotlib figure as a PNG data URI and close it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        return self


def _td(value: Any) -> str:
    text = isinstance(value, dict | list | tuple) or (isinstance(value, str) and len(value) > 24)
    return f'<td class="text">{_fmt(value)}</td>' if text else f"<td>{_fmt(value)}</td>"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return html.escape(str(value))
        text = f"{value:.4g}"
        return f"{value:,.0f}" if abs(value) >= 1e4 or "e+" in text else text  # 11,515, not 1.152e+04
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1e5 else str(value)
    if isinstance(value, dict):
        if not value:
            return ""
        items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{_fmt(v)}</dd>" for k, v in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, str | Path) and str(value).endswith(".html") and Path(value).is_absolute():
        return _link(Path(value), Path(value).name)
    return html.escape("" if value is None else str(value))


def _link(target: Path, text: str) -> str:
    href = target.resolve().as_uri() if target.is_absolute() else str(target)
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def write_report(path: Path, title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    """Write an HTML report atomically (temporary name, then rename) and return its path."""
    body = "".join(f"<h2>{html.escape(s.title)}</h2>" + "".join(s.parts) for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='muted'>{html.escape(subtitle)}</p>{body}</body></html>"
    )
    return write_text(path, page)


def new_figure(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib (figure, axes) on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))
