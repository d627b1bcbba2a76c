"""The serving state of one server: the loaded model, the batcher and the prediction log.

``infer`` answers only after the batch's predictions are committed to the store (one transaction per
batch), so an acknowledged prediction survives a crash. ``switch`` loads the new model fully before
swapping the reference; requests already queued or batched finish on the model they were checked
against.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcloop.deploy.batcher import Batcher, Item
from dcloop.deploy.metrics import ServerMetrics
from dcloop.deploy.registry import get_model_version
from dcloop.deploy.runtime import OnnxModel, as_model_input, as_pixels, load_model, softmax
from dcloop.feedback.store import enforce_retention, log_predictions, new_predictions
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What one request gets back: per image logits, probabilities and stored prediction ids."""

    model: OnnxModel
    logits: np.ndarray
    probabilities: np.ndarray
    prediction_ids: list[str]
    latency_ms: float


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_image_pixels: int
    max_batch_images: int


class ModelService:
    """Loaded model + batcher + prediction log. Create inside the app's lifespan, then ``start``."""

    def __init__(
        self,
        ws: Workspace,
        model_ref: str,
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queue: int,
        threads: int,
        store_inputs: bool,
        log_predictions: bool = True,
    ) -> None:
        self.ws, self.model_ref, self.threads, self.store_inputs = ws, model_ref, threads, store_inputs
        self.log_predictions = log_predictions
        self.model: OnnxModel | None = None
        self.batcher = Batcher(
            self._run_batch,
            max_batch_size=max_batch_size,
            max_delay_s=max_queue_delay_ms / 1000,
            max_queue=max_queue,
            on_batch=self._observe_batch,
        )
        self.metrics = ServerMetrics(queue_depth=lambda: self.batcher.depth)
        self._switch_lock = asyncio.Lock()
        # Batches run in two threads; their commits take turns here instead of colliding in SQLite,
        # whose busy handler would sleep the loser for milliseconds (the p99 tail under load).
        self._commit_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher.running

    async def start(self) -> None:
        await self.switch(self.model_ref, reason="start")
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def switch(self, ref: str, reason: str = "admin") -> OnnxModel:
        """Serve ``ref`` (name@alias / name@version) from now on; a no-op if already served."""
        async with self._switch_lock:
            version = await asyncio.to_thread(get_model_version, self.ws, ref)
            if self.model is not None and self.model.version.id == version.id:
                return self.model
            model = await asyncio.to_thread(load_model, version, self.threads)
            self.model = model  # one reference swap: new requests use it, queued ones keep theirs
            self.model_ref = ref
            self.metrics.model.set(1, version.name, str(version.version), version.sha256[:12], only=True)
            self.metrics.switches.inc()
            log.info("serving %s (%s)", version.ref, reason)
            return model

    async def infer(self, model: OnnxModel, x: np.ndarray, endpoint: str) -> Answer:
        """Batch, run and (unless ``feedback.log_predictions`` is off) durably log ``x`` (uint8 or [0, 1] float32, (N, C, H, W)) on ``model``."""
        return await self.batcher.submit(model, len(x), (x, endpoint))

    def _run_batch(self, model: OnnxModel, items: Sequence[Item]) -> list[Answer]:
        # Convert per request: a batch may mix uint8 pixels and [0, 1] floats.
        x = _join([as_model_input(item.payload[0]) for item in items])
        pixels = _join([as_pixels(item.payload[0]) for item in items])
        logits = model.logits(x)
        probs = softmax(logits)
        done = time.perf_counter()
        latencies = [(done - item.enqueued) * 1000 for item in items]
        per_image = np.repeat(latencies, [item.size for item in items])
        endpoints = {item.payload[1] for item in items}
        endpoint = endpoints.pop() if len(endpoints) == 1 else "mixed"
        rows = new_predictions(
            pixels,
            probs,
            model.classes,
            model.version,
            latency_ms=per_image.tolist(),
            endpoint=endpoint,
            store_input=self.store_inputs and self.log_predictions,
        )
        if self.log_predictions:
            with self._commit_lock:  # one commit per batch; only then do requests get answers
                log_predictions(self.ws.store, rows)
        self.metrics.predictions.inc(model.version.ref, amount=len(rows))
        answers, start = [], 0
        for item, latency in zip(items, latencies, strict=True):
            stop = start + item.size
            ids = [r.id for r in rows[start:stop]]
            answers.append(Answer(model, logits[start:stop], probs[start:stop], ids, latency))
            start = stop
        return answers

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.inference.observe(seconds)

    async def follow_champion(self, every_s: float) -> None:
        """Poll the champion alias of the served model's name and switch when it moves."""
        while True:
            await asyncio.sleep(every_s)
            if self.model is None:
                continue
            try:
                await self.switch(f"{self.model.version.name}@champion", reason="champion moved")
            except Exception:  # keep serving the current model; the next poll retries
                log.exception("following the champion failed")

    async def enforce_retention(
        self, every_s: float, max_age_days: float | None, max_input_mb: float | None
    ) -> None:
        """Apply the stored-input retention now and then every ``every_s`` seconds."""
        while True:
            try:
                cleared = await asyncio.to_thread(
                    enforce_retention, self.ws.store, max_age_days, max_input_mb
                )
                if cleared:
                    log.info("retention cleared %d stored inputs", cleared)
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(every_s)


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
