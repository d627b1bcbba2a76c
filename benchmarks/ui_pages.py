"""Server-side time of every dashboard page with 200,000 predictions and 50 runs in the store.

Fills a fresh SQLite workspace through the store's public API (bulk inserts: one transaction per
10,000 predictions), then requests each page in-process (the FastAPI app, no socket, so the time is
the server's) and prints p50/p95 per page. Run: ``.venv/bin/python benchmarks/ui_pages.py``
(``--predictions``, ``--runs``, ``--repeats`` to change the sizes; ``--keep DIR`` keeps the workspace).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
BATCH = 10_000


def fill(ws, predictions: int, n_runs: int, seed: int = 0) -> dict[str, float]:
    from dcloop.store import DatasetRecord, RunRecord, datasets, registry, runs, turns
    from dcloop.store import predictions as log

    store, rng, now = ws.store, np.random.default_rng(seed), datetime.now(UTC)
    started = time.perf_counter()
    counts = {s: {c: n for c in CLASSES} for s, n in (("train", 700), ("val", 150), ("test", 150))}
    data = datasets.add_dataset(store, DatasetRecord(uuid.uuid4().hex * 2, "animals", now, "/nowhere", CLASSES, counts, [1, 28, 28], {"kind": "animal-mnist"}, {"duplicates": 3, "kept": 10000}))  # fmt: skip
    run_ids = []
    for i in range(n_runs):
        acc = float(0.8 + 0.15 * rng.random())
        matrix = rng.integers(0, 20, (10, 10)).tolist()
        per_class = {c: {"precision": acc, "recall": acc, "f1": acc, "support": 150} for c in CLASSES}
        cost = {"wall_s": 60.0 + i, "cpu_s": 50.0, "peak_rss_mb": 500.0, "energy_kwh": 1e-4, "co2_kg": 4e-5, "cost_usd": 1e-5, "energy_source": "estimated"}  # fmt: skip
        metrics = {"accuracy": acc, "f1_macro": acc, "classes": CLASSES, "confusion_matrix": matrix, "per_class": per_class, "cost": cost}  # fmt: skip
        record = RunRecord(uuid.uuid4().hex, "train", f"run-{i}", data.id, "seed-cnn", "finished", now - timedelta(hours=n_runs - i), {}, {"seed": i}, metrics, "/nowhere")  # fmt: skip
        runs.add_run(store, record)
        for epoch in range(1, 11):
            runs.log_epoch(store, record.id, epoch, {"train_loss": 1 / epoch, "val_loss": 1.2 / epoch, "val_accuracy": acc * (1 - 0.5 / epoch)}, 5.0)  # fmt: skip
        run_ids.append(record.id)
    versions = []
    for number, run_id in enumerate(run_ids[-3:], start=1):

        def build(v: int, run_id: str = run_id) -> registry.ModelVersion:
            return registry.ModelVersion(uuid.uuid4().hex, "animals", v, now, "/nowhere/model.onnx", "0" * 64, CLASSES, [1, 28, 28], run_id, data.id, None, "onnx", {"accuracy": 0.9}, {})  # fmt: skip

        versions.append(registry.register_version(store, "animals", build, alias="champion" if number < 3 else "challenger"))  # fmt: skip
    for _ in range(5):
        turn = turns.start_turn(store, {})
        for position, step in enumerate(("prepare", "train", "optimize", "register", "gate")):
            turns.finish_step(store, turn.id, step, position, {"gate_passed": True, "champion": "animals@2"}, 1.0, "finished")  # fmt: skip
        turns.set_status(store, turn.id, "finished")
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, predictions, BATCH):
        n = min(BATCH, predictions - start)
        model = versions[1] if start < predictions * 0.8 else versions[0]
        probs = rng.dirichlet(np.full(10, 0.3), n).astype(np.float32)
        pixels = np.zeros((n, 1, 28, 28), dtype=np.uint8)
        rows = log.new_predictions(pixels, probs, CLASSES, model, latency_ms=[2.0] * n, store_input=False)
        offsets = np.sort(rng.uniform(0, 7 * 86400, n))[::-1]
        rows = [dataclasses.replace(r, created_at=now - timedelta(seconds=float(o))) for r, o in zip(rows, offsets, strict=True)]  # fmt: skip
        log.log_predictions(store, rows)
        chosen = rows[::3]
        labels = [(r.id, r.pred_index if rng.random() < 0.85 else int(rng.integers(0, 10))) for r in chosen]
        for i in range(0, len(labels), 5_000):
            log.add_labels(store, labels[i : i + 5_000])
    return {"records_s": fill_s, "predictions_s": time.perf_counter() - started}


PAGES = ["/", "/data", "/runs", "/runs/{run}", "/runs/compare?ids={run},{other}", "/models", "/monitor", "/api/monitor", "/serving", "/plan?kind=train&preset=llama2-70b&tokens=2T"]  # fmt: skip


def measure(ws, repeats: int) -> list[tuple[str, float, float, float]]:
    from fastapi.testclient import TestClient

    from dcloop.store import runs
    from dcloop.ui import create_app

    found = runs.recent_runs(ws.store, limit=2)
    app = create_app(ws, token="bench", metrics_url="http://127.0.0.1:9/metrics")  # no server: an error card
    table = []
    with TestClient(app) as client:
        for template in PAGES:
            path = template.format(run=found[0].id, other=found[1].id)
            assert client.get(path).status_code == 200, path  # warm: imports, caches of the driver
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, path
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            table.append((template.split("?")[0], statistics.median(times), p95, max(times)))
    return table


def recount(ws) -> list[tuple[str, float]]:
    """Cold time of each aggregate the pages keep (what one background refresh costs)."""
    from dcloop.ui import _queries as q

    timed = []
    for name, call in (
        ("feedback counts (Loop)", lambda: q.predictions.feedback_counts(ws.store, 0.2, None, None)),
        ("series (Monitor)", lambda: q._monitor_series(ws, None, None)),
        ("scores per version (Models)", lambda: q._version_scores(ws, None, None)),
    ):
        started = time.perf_counter()
        call()
        timed.append((name, (time.perf_counter() - started) * 1000))
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="Build the workspace here and keep it.")
    args = parser.parse_args()
    from dcloop.workspace import init_workspace

    folder = args.keep or Path(tempfile.mkdtemp(prefix="dcloop-ui-bench-"))
    ws = init_workspace(folder / "ws")
    took = fill(ws, args.predictions, args.runs)
    print(f"store: {args.predictions:,} predictions (1/3 labelled), {args.runs} runs; filled in {took['records_s']:.1f} s + {took['predictions_s']:.1f} s")  # fmt: skip
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for page, p50, p95, worst in measure(ws, args.repeats):
        print(f"{page:32} {p50:8.1f} {p95:8.1f} {worst:8.1f}")
    print("aggregates recounted in the background (served for up to 15 s between recounts):")
    for name, ms in recount(ws):
        print(f"{name:32} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
