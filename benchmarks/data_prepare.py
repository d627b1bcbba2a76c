"""Measure `import_source` on Animal-MNIST and on a generated folder of PNGs; print a table.

Usage: .venv/bin/python benchmarks/data_prepare.py [--files 2000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dcloop.data import import_source, load_dataset
from dcloop.workspace import init_workspace


def _folder(root: Path, files: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(files):
        folder = root / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _measure(label: str, work) -> list[str]:
    start = time.perf_counter()
    record = work()
    seconds = time.perf_counter() - start
    n = record.cleaning["input"]
    return [label, str(n), f"{seconds:.2f}", f"{n / seconds:,.0f}", record.short_id]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        folder = _folder(Path(tmp) / "pngs", args.files)
        rows = [
            _measure("animal-mnist (10 classes)", lambda: import_source(ws, "animal-mnist")),
            _measure("animal-mnist again (same id)", lambda: import_source(ws, "animal-mnist")),
            _measure(f"folder of {args.files} 32x32 PNGs -> 28x28", lambda: import_source(ws, str(folder))),
        ]
        start = time.perf_counter()
        data = load_dataset(ws, "animal-mnist")
        load_ms = (time.perf_counter() - start) * 1000
    print(f"{'source':<36} {'inputs':>7} {'seconds':>8} {'images/s':>9}  version")
    for label, n, seconds, rate, version in rows:
        print(f"{label:<36} {n:>7} {seconds:>8} {rate:>9}  {version}")
    print(f"load_dataset (memory-mapped x {data.x.shape}): {load_ms:.1f} ms")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
