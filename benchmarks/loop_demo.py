"""Run the closing-the-loop demo for each distribution shift and print its figures as a table.

Target: the retrained model recovers at least 90% of the accuracy the shift took, within a few
minutes on 2 CPU cores.

Usage: .venv/bin/python benchmarks/loop_demo.py [--fast] [--shift negative --shift rotate]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dcloop.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="three classes, four epochs")
    parser.add_argument("--shift", action="append", choices=["negative", "rotate"], help="repeatable")
    args = parser.parse_args()
    rows = []
    for shift in args.shift or ["negative", "rotate"]:
        with tempfile.TemporaryDirectory() as folder:
            r = run_demo(Path(folder) / "demo", fast=args.fast, shift=shift)
        recovered = "n/a" if r.recovered is None else f"{r.recovered:.1%}"
        rows.append([shift, f"{r.accuracy_unshifted:.4f}", f"{r.accuracy_shifted_before:.4f}",
                     f"{r.accuracy_shifted_after:.4f}", recovered, str(r.promoted), f"{r.wall_s:.0f}"])  # fmt: skip
    header = ["shift", "unshifted", "shifted before", "shifted after", "recovered", "promoted", "wall s"]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
