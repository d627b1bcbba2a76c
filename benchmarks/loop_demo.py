"""Run the closing-the-loop demo for each distribution shift (and training seed) and print its figures.

Target: the retrained model recovers at least 90% of the accuracy the shift took, with the gate's
default thresholds, within a few minutes on 2 CPU cores. Wall times are of one shared, busy machine:
compare them within a run, not across runs.

Usage: .venv/bin/python benchmarks/loop_demo.py [--fast] [--shift negative --shift rotate] [--seed 0 --seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from statistics import mean

from dcloop.demo import DemoResult, run_demo

HEADER = ["shift", "seed", "unshifted", "shifted before", "shifted after", "recovered", "promoted", "wall s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="three classes, four epochs")
    parser.add_argument("--shift", action="append", choices=["negative", "rotate"], help="repeatable")
    parser.add_argument("--seed", action="append", type=int, help="training seed; repeatable (default 0)")
    args = parser.parse_args()
    rows, summary = [], []
    for shift in args.shift or ["negative", "rotate"]:
        results = [_run(shift, seed, args.fast) for seed in args.seed or [0]]
        rows += [_row(r) for r in results]
        recovered = [r.recovered for r in results if r.recovered is not None]
        if len(recovered) > 1:
            summary.append(f"{shift}: recovered mean {mean(recovered):.1%}, min {min(recovered):.1%}")
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows, strict=True)]
    for row in [HEADER, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    print("\n".join(summary))


def _run(shift: str, seed: int, fast: bool) -> DemoResult:
    with tempfile.TemporaryDirectory() as folder:
        return run_demo(Path(folder) / "demo", fast=fast, shift=shift, seed=seed)


def _row(r: DemoResult) -> list[str]:
    recovered = "n/a" if r.recovered is None else f"{r.recovered:.1%}"
    figures = [r.accuracy_unshifted, r.accuracy_shifted_before, r.accuracy_shifted_after]
    return [
        r.shift,
        str(r.seed),
        *(f"{x:.4f}" for x in figures),
        recovered,
        str(r.promoted),
        f"{r.wall_s:.0f}",
    ]


if __name__ == "__main__":
    main()
