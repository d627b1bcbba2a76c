"""Measure an ONNX variant the way it will be served: ONNX Runtime on the CPU.

Accuracy and macro F1 on the test split; file size; batch-1 latency (p50/p99 over many single-example
calls after a warm-up); throughput at the modality's batch (256 images; 32 texts, padded to the batch's
longest as a server pads them), best of 3 rounds; energy per 1,000 inferences from a JobMeter around
the throughput loop (RAPL counters where readable, else estimated from CPU time, and marked so).

The modality decides only how a batch of test examples becomes ONNX inputs (``TestInputs``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.optimize._onnx import INPUT_NAME, OUTPUT_NAME, onnx_session

THROUGHPUT_BATCH = 256
TEXT_THROUGHPUT_BATCH = 32
_WARMUP = 5
_ROUNDS = 3

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class TestInputs:
    """The test split as ONNX inputs: ``feeds(index)`` builds the inputs of those examples."""

    count: int
    feeds: Callable[[np.ndarray], Feeds]
    throughput_batch: int
    unit: str  # what one example is, for the throughput column: "img" or "text"


def image_inputs(x_test: np.ndarray) -> TestInputs:
    """uint8 test images (N, C, H, W) fed as float32 in [0, 1]."""
    images = x_test.astype(np.float32) / 255.0
    return TestInputs(
        len(images), lambda index: {INPUT_NAME: np.ascontiguousarray(images[index])}, THROUGHPUT_BATCH, "img"
    )


def text_inputs(ids: np.ndarray, lengths: np.ndarray) -> TestInputs:
    """Padded token ids (N, L) and lengths (N,); each batch is cut to its longest text."""
    from dcloop.optimize._text_onnx import text_feed

    return TestInputs(
        len(ids), lambda index: text_feed(ids[index], lengths[index]), TEXT_THROUGHPUT_BATCH, "text"
    )


def measure_onnx(
    path: Path,
    inputs: TestInputs,
    y_test: np.ndarray,
    classes: list[str],
    *,
    threads: int,
    latency_runs: int,
    throughput_batches: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Quality and speed of the ONNX file at ``path`` on the test ``inputs``, and its top-1
    predictions (to compare variants example by example)."""
    session = onnx_session(path, threads)
    metrics, predictions = _quality(_logits(session, inputs), y_test, classes)
    metrics["size_bytes"] = path.stat().st_size
    metrics.update(_latency(session, inputs, latency_runs))
    metrics.update(_throughput(session, inputs, throughput_batches))
    metrics["threads"] = threads
    return metrics, predictions


def _logits(session: Any, inputs: TestInputs, batch_size: int = 64) -> np.ndarray:
    outputs = [
        session.run([OUTPUT_NAME], inputs.feeds(np.arange(start, min(start + batch_size, inputs.count))))[0]
        for start in range(0, inputs.count, batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


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


def _latency(session: Any, inputs: TestInputs, runs: int) -> dict[str, float]:
    one = [inputs.feeds(np.array([i % inputs.count])) for i in range(runs + _WARMUP)]
    times = []
    for index, feed in enumerate(one):
        start = time.perf_counter()
        session.run([OUTPUT_NAME], feed)
        if index >= _WARMUP:
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"latency_p50_ms": float(np.percentile(ms, 50)), "latency_p99_ms": float(np.percentile(ms, 99))}


def _throughput(session: Any, inputs: TestInputs, batches: int) -> dict[str, Any]:
    """Best of ``_ROUNDS`` rounds of ``batches`` batches of the first test examples (repeated when
    fewer; other work on a shared CPU only slows a round down); energy is metered over every round
    and divided by every example."""
    from dcloop.meter import JobMeter

    size = inputs.throughput_batch
    batch = inputs.feeds(np.arange(size) % inputs.count)
    for _ in range(2):
        session.run([OUTPUT_NAME], batch)
    best = float("inf")
    with JobMeter() as meter:
        for _ in range(_ROUNDS):
            start = time.perf_counter()
            for _ in range(batches):
                session.run([OUTPUT_NAME], batch)
            best = min(best, time.perf_counter() - start)
    cost = meter.result()
    count = _ROUNDS * batches * size
    return {
        "throughput_ips": batches * size / best,
        "throughput_batch": size,
        "throughput_unit": inputs.unit,
        "energy_j_per_1k": cost.energy_j / count * 1000.0,
        "energy_source": cost.energy_source,
    }
