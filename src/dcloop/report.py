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
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
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
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")
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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


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
