"""Plots as inline SVG, drawn on the server: no JavaScript library, nothing fetched, axes labelled.

Every function returns one ``<svg>`` element as text; values are escaped. Colours come from the
stylesheet's classes (``s0``..``s5`` for series), so the plots follow the page's theme.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

Point = tuple[float, float]
PAD_L, PAD_R, PAD_T, PAD_B = 56, 40, 14, 42


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(value: float, time_axis: bool = False) -> str:
    if time_axis:
        return datetime.fromtimestamp(value, UTC).strftime("%m-%d %H:%M")
    return f"{value:.3g}"


class _Frame:
    """Maps data to pixels inside the padded plot area and draws the axes."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float]) -> None:
        self.w, self.h = width, height
        self.x0, self.x1 = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        self.y0, self.y1 = y if y[1] > y[0] else (min(0.0, y[0]), max(y[0] * 1.1, y[0] + 1.0))  # one value

    def px(self, x: float) -> float:
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (self.w - PAD_L - PAD_R)

    def py(self, y: float) -> float:
        return self.h - PAD_B - (y - self.y0) / (self.y1 - self.y0) * (self.h - PAD_T - PAD_B)

    def axes(self, x_label: str, y_label: str, time_axis: bool = False) -> list[str]:
        out = [
            f'<line class="axis" x1="{PAD_L}" y1="{self.h - PAD_B}" x2="{self.w - PAD_R}" y2="{self.h - PAD_B}"/>'
        ]
        out.append(f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{self.h - PAD_B}"/>')
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{self.w - PAD_R}" y2="{y:.1f}"/>')
            out.append(
                f'<text class="tick" x="{PAD_L - 4}" y="{y + 3:.1f}" text-anchor="end">{_fmt(t)}</text>'
            )
        for t in _ticks(self.x0, self.x1, 4 if time_axis else 6):
            x = self.px(t)
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{self.h - PAD_B + 14}" text-anchor="middle">'
                f"{escape(_fmt(t, time_axis))}</text>"
            )
        out.append(
            f'<text class="label" x="{(PAD_L + self.w - PAD_R) / 2}" y="{self.h - 6}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
        out.append(
            f'<text class="label" transform="rotate(-90)" x="{-(PAD_T + self.h - PAD_B) / 2}" y="14" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
        return out


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _legend(names: Sequence[str], width: int) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = width - PAD_R - 130
        y = PAD_T + 4 + 14 * i
        out.append(f'<rect class="s{i % 6} fill" x="{x}" y="{y}" width="10" height="10"/>')
        out.append(f'<text class="tick" x="{x + 14}" y="{y + 9}">{escape(name)}</text>')
    return out


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]],
    x_label: str,
    y_label: str,
    *,
    title: str,
    time_axis: bool = False,
    y_range: tuple[float, float] | None = None,
    thresholds: Sequence[tuple[float, str]] = (),
    width: int = 560,
    height: int = 260,
) -> str:
    """Lines with markers, one per named series; dashed horizontal lines at ``thresholds``."""
    points = [pt for _, pts in series for pt in pts]
    if not points:
        return empty_plot(title, width, height)
    xs, ys = [x for x, _ in points], [y for _, y in points] + [t for t, _ in thresholds]
    frame = _Frame(width, height, (min(xs), max(xs)), y_range or (min(ys), max(ys)))
    body = frame.axes(x_label, y_label, time_axis)
    for value, name in thresholds:
        y = frame.py(value)
        body.append(f'<line class="threshold" x1="{PAD_L}" y1="{y:.1f}" x2="{width - PAD_R}" y2="{y:.1f}"/>')
        body.append(f'<text class="tick" x="{PAD_L + 4}" y="{y - 3:.1f}">{escape(name)}</text>')
    for i, (_, pts) in enumerate(series):
        path = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in pts)
        body.append(f'<polyline class="s{i % 6} line" points="{path}"/>')
        body.extend(
            f'<circle class="s{i % 6} fill" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="2.5"/>'
            for x, y in pts
        )
    body += _legend([name for name, _ in series], width)
    return _svg(width, height, title, body)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    x_label: str,
    y_label: str,
    *,
    title: str,
    width: int = 560,
    height: int = 240,
) -> str:
    """Vertical bars, one per label."""
    if not values:
        return empty_plot(title, width, height)
    frame = _Frame(width, height, (0, len(values)), (0, max(max(values), 1e-12)))
    body = [line for line in frame.axes(x_label, y_label) if 'class="tick" x' not in line or "end" in line]
    slot = (width - PAD_L - PAD_R) / len(values)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x, y = PAD_L + i * slot + slot * 0.1, frame.py(value)
        body.append(
            f'<rect class="s0 fill" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{frame.py(0) - y:.1f}"><title>{escape(label)}: {value:g}</title></rect>'
        )
        body.append(
            f'<text class="tick" x="{x + slot * 0.4:.1f}" y="{height - PAD_B + 14}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    return _svg(width, height, title, body)


def heatmap(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str, x_label: str, y_label: str
) -> str:
    """A square count matrix (rows: true class, columns: predicted), each cell shaded and numbered."""
    n = len(labels)
    cell = max(18, min(48, 420 // max(n, 1)))
    left, top = 90, 20
    width, height = left + n * cell + 20, top + n * cell + 60
    peak = max((v for row in matrix for v in row), default=0) or 1
    body = []
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            shade = 0.08 + 0.92 * value / peak
            x, y = left + j * cell, top + i * cell
            body.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" fill-opacity="{shade:.2f}">'
                f"<title>{escape(labels[i])} as {escape(labels[j])}: {value}</title></rect>"
            )
            body.append(
                f'<text class="cellnum" x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle">{value}</text>'
            )
    for k, label in enumerate(labels):
        body.append(
            f'<text class="tick" x="{left - 4}" y="{top + k * cell + cell / 2 + 3}" text-anchor="end">{escape(label)}</text>'
        )
        body.append(
            f'<text class="tick" x="{left + k * cell + cell / 2}" y="{top + n * cell + 14}" '
            f'text-anchor="middle">{escape(label[:8])}</text>'
        )
    body.append(
        f'<text class="label" x="{left + n * cell / 2}" y="{height - 10}" text-anchor="middle">{escape(x_label)}</text>'
    )
    body.append(
        f'<text class="label" transform="rotate(-90)" x="{-(top + n * cell / 2)}" y="14" text-anchor="middle">{escape(y_label)}</text>'
    )
    return _svg(width, height, title, body)


def scatter(
    points: Sequence[tuple[float, float, str]],
    x_label: str,
    y_label: str,
    *,
    title: str,
    width: int = 600,
    height: int = 280,
) -> str:
    """Labelled points (e.g. variants: latency against accuracy)."""
    if not points:
        return empty_plot(title, width, height)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    frame = _Frame(width, height, (0, max(xs) * 1.1), (min(ys) - 0.01, max(ys) + 0.01))
    body = frame.axes(x_label, y_label)
    for i, (x, y, name) in enumerate(points):
        body.append(f'<circle class="s{i % 6} fill" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="5"/>')
        body.append(
            f'<text class="tick" x="{frame.px(x) + 7:.1f}" y="{frame.py(y) - 5:.1f}">{escape(name)}</text>'
        )
    return _svg(width, height, title, body)


def graph(
    columns: Sequence[tuple[str, Sequence[tuple[str, str, str]]]],
    edges: Sequence[tuple[str, str]],
    *,
    title: str,
) -> str:
    """A layered graph: columns of (id, label, href) nodes left to right, edges as curves between them."""
    col_w, row_h, box_w, box_h = 230, 40, 190, 28
    rows = max((len(nodes) for _, nodes in columns), default=0)
    width, height = 20 + col_w * len(columns), 50 + row_h * max(rows, 1)
    where: dict[str, tuple[float, float]] = {}
    body = []
    for c, (heading, nodes) in enumerate(columns):
        x = 20 + c * col_w
        body.append(
            f'<text class="label" x="{x + box_w / 2}" y="18" text-anchor="middle">{escape(heading)}</text>'
        )
        for r, (node_id, label, href) in enumerate(nodes):
            y = 34 + r * row_h
            where[node_id] = (x, y)
            box = (
                f'<rect class="node" x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4"/>'
                f'<text class="tick" x="{x + 6}" y="{y + 18}">{escape(label[:30])}</text>'
            )
            body.append(f'<a href="{escape(href)}">{box}</a>' if href else box)
    for a, b in edges:
        if a in where and b in where:
            (x0, y0), (x1, y1) = where[a], where[b]
            sx, sy, ex, ey = x0 + box_w, y0 + box_h / 2, x1, y1 + box_h / 2
            body.insert(0, f'<path class="edge" d="M{sx},{sy} C{sx + 20},{sy} {ex - 20},{ey} {ex},{ey}"/>')
    return _svg(width, height, title, body)


def loop_diagram(stages: Sequence[tuple[str, str]], *, title: str) -> str:
    """The loop's stages as boxes in a row, each coloured by its state, with the feedback arrow back."""
    box_w, gap, height = 112, 22, 120
    width = 20 + len(stages) * (box_w + gap)
    body = []
    for i, (name, state) in enumerate(stages):
        x = 10 + i * (box_w + gap)
        body.append(
            f'<g class="stage {escape(state)}"><rect x="{x}" y="20" width="{box_w}" height="44" rx="6"/>'
            f'<text class="stagename" x="{x + box_w / 2}" y="38" text-anchor="middle">{escape(name)}</text>'
            f'<text class="tick" x="{x + box_w / 2}" y="55" text-anchor="middle">{escape(state)}</text></g>'
        )
        if i + 1 < len(stages):
            body.append(f'<path class="edge arrow" d="M{x + box_w},42 L{x + box_w + gap},42"/>')
    end = 10 + (len(stages) - 1) * (box_w + gap) + box_w / 2
    body.append(
        f'<path class="edge arrow" d="M{end},64 L{end},96 L{10 + box_w / 2},96 L{10 + box_w / 2},64"/>'
    )
    body.append(
        f'<text class="tick" x="{width / 2}" y="110" text-anchor="middle">labelled feedback becomes new data</text>'
    )
    defs = '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
    return _svg(width, height, title, [defs, *body])


def empty_plot(title: str, width: int = 600, height: int = 120) -> str:
    """A framed plot that says there is nothing to draw yet (still an SVG, so the page's layout holds)."""
    body = [
        f'<rect class="node" x="1" y="1" width="{width - 2}" height="{height - 2}"/>',
        f'<text class="label" x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(title)}: no data yet</text>',
    ]
    return _svg(width, height, title, body)
