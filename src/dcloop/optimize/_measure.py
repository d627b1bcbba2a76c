"""Measure an ONNX variant the way it will be served: ONNX Runtime on the CPU.

Accuracy and macro F1 on the test split; file size; batch-1 latency (p50/p99 over many single-image
calls after a warm-up); batch-256 throughput (best of 3 rounds); energy per 1,000 inferences from a JobMeter around the
throughput loop (RAPL counters where readable, else estimated from CPU time, and marked so).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.optimize._onnx import INPUT_NAME, OUTPUT_NAME, onnx_logits, onnx_session

THROUGHPUT_BATCH = 256
_WARMUP = 5
_ROUNDS = 3


def measure_onnx(
    path: Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: list[str],
    *,
    threads: int,
    latency_runs: int,
    throughput_batches: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Quality and speed of the ONNX file at ``path`` on uint8 test images ``x_test``, and its
    top-1 predictions (to compare variants image by image)."""
    session = onnx_session(path, threads)
    images = x_test.astype(np.float32) / 255.0
    metrics, predictions = _quality(onnx_logits(session, images), y_test, classes)
    metrics["size_bytes"] = path.stat().st_size
    metrics.update(_latency(session, images, latency_runs))
    metrics.update(_throughput(session, images, throughput_batches))
    metrics["threads"] = threads
    return metrics, predictions


def _quality(logits: np.ndarray, y: np.ndarray, classes: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    import torch

    from dcloop.train._metrics import classification_metrics, probabilities

    # the same logits -> probabilities rule as predict_arrays, so ONNX and PyTorch scores agree
    probs = probabilities(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))).numpy()
    predictions = probs.argmax(axis=1)
    result = classification_metrics(y, predictions, probs, classes)
    return {
        "accuracy": result["accuracy"],
        "f1_macro": result["f1_macro"],
        "test_n": result["n"],
    }, predictions


def _latency(session: Any, images: np.ndarray, runs: int) -> dict[str, float]:
    one = [np.ascontiguousarray(images[i % len(images)][None]) for i in range(runs + _WARMUP)]
    times = []
    for index, x in enumerate(one):
        start = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: x})
        if index >= _WARMUP:
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"latency_p50_ms": float(np.percentile(ms, 50)), "latency_p99_ms": float(np.percentile(ms, 99))}


def _throughput(session: Any, images: np.ndarray, batches: int) -> dict[str, Any]:
    """Best of ``_ROUNDS`` rounds of ``batches`` batches (other work on a shared CPU only slows a
    round down); energy is metered over every round and divided by every image."""
    from dcloop.meter import JobMeter

    repeat = -(-THROUGHPUT_BATCH // len(images))
    batch = np.ascontiguousarray(np.tile(images, (repeat, 1, 1, 1))[:THROUGHPUT_BATCH])
    for _ in range(2):
        session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    best = float("inf")
    with JobMeter() as meter:
        for _ in range(_ROUNDS):
            start = time.perf_counter()
            for _ in range(batches):
                session.run([OUTPUT_NAME], {INPUT_NAME: batch})
            best = min(best, time.perf_counter() - start)
    cost = meter.result()
    count = _ROUNDS * batches * THROUGHPUT_BATCH
    return {
        "throughput_ips": batches * THROUGHPUT_BATCH / best,
        "energy_j_per_1k": cost.energy_j / count * 1000.0,
        "energy_source": cost.energy_source,
    }
