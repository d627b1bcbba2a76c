"""The plain-text table the benchmarks print: columns padded to their widest cell."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> None:
    """Print ``header`` and ``rows``, each cell left-aligned in a column as wide as its widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
