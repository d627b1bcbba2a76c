"""The serving state of one server: the loaded model, the batcher and the prediction log.

``infer`` answers only after the batch's predictions are committed to the store, so an acknowledged
prediction survives a crash. One log thread commits them: the batches that finish while it commits go
into its next transaction together (group commit), so under load the fsyncs stay few and the batch
slots go back to inference instead of waiting on the disk. ``switch`` loads the new model fully before
swapping the reference; requests already queued or batched finish on the model they were checked
against.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcloop.atomic import write_text
from dcloop.deploy._batcher import Batcher, Item
from dcloop.deploy._metrics import ServerMetrics
from dcloop.deploy._registry import get_model_version
from dcloop.deploy._runtime import OnnxModel, as_model_input, as_pixels, load_model, softmax
from dcloop.deploy._text import TokenBatch, encode
from dcloop.store.predictions import (
    PredictionRows,
    log_predictions,
    new_prediction_rows,
    new_text_prediction_rows,
    time_ordered_ids,
)
from dcloop.store.retention import enforce_retention
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
SWITCH_RETRY_S = 5.0  # after a failed attempt to follow another worker's model switch


@dataclass(frozen=True)
class Answer:
    """What one request gets back: per input logits, probabilities and stored prediction ids."""

    model: OnnxModel
    logits: np.ndarray
    probabilities: np.ndarray
    prediction_ids: list[str]
    latency_ms: float
    stored: asyncio.Future[None] | None = None  # resolves once the batch's predictions are committed
    tokens: tuple[np.ndarray, np.ndarray] | None = None  # a text's token counts and whether each was cut


class PredictionLog:
    """A thread that commits predictions for many batches at once; ``write`` gives a future that resolves
    (on ``loop``) when the rows are durable, or fails with the commit's error.

    Whatever queued up during one commit goes into the next, in one transaction: a group commit. While
    ``busy()`` says more rows are on their way (a batch still running inference, requests queued), the
    thread waits up to ``linger_s`` for them before committing: under load a commit then carries several
    batches, and each fsync and rewritten index page is paid for by more predictions. Alone, a batch
    is committed at once.

    ``turn`` (a context manager factory; see ``taking_turns``) is held around each commit where
    several processes share the store: rows that arrive while the thread waits for its turn join the
    commit it is about to make rather than wait for the next.
    """

    LINGER_S = 0.004
    MAX_GROUP_ROWS = 512

    def __init__(
        self,
        write: Callable[[PredictionRows], None],
        loop: asyncio.AbstractEventLoop,
        busy: Callable[[], bool] = lambda: False,
        linger_s: float = LINGER_S,
        turn: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        self._write, self._loop, self._busy, self._linger_s = write, loop, busy, linger_s
        self._turn = turn
        self._queue: queue.SimpleQueue[tuple[PredictionRows, asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="dcloop-log", daemon=True)
        self._thread.start()

    def write(self, rows: PredictionRows) -> asyncio.Future[None]:
        stored: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((rows, stored))
        return stored

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stopping = self._gather(group, time.perf_counter() + self._linger_s)
            error: BaseException | None = None
            try:
                with self._turn():
                    if not stopping:  # what came while waiting for the turn goes into this commit
                        stopping = self._gather(group, None)
                    self._write(PredictionRows.join([rows for rows, _ in group]))
            except Exception as exc:
                log.exception("committing %d batches of predictions failed", len(group))
                error = exc
            self._loop.call_soon_threadsafe(_settle, [stored for _, stored in group], error)

    def _gather(
        self, group: list[tuple[PredictionRows, asyncio.Future[None]]], linger_until: float | None
    ) -> bool:
        """Add queued rows to ``group`` (to ``MAX_GROUP_ROWS`` rows), waiting for more until
        ``linger_until`` while ``busy()`` (None: only what is queued now); True when a stop was queued."""
        count = sum(len(rows) for rows, _ in group)
        while count < self.MAX_GROUP_ROWS:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = 0.0 if linger_until is None else linger_until - time.perf_counter()
                if remaining <= 0 or not self._busy():
                    return False
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return False
            if nxt is None:
                return True
            group.append(nxt)
            count += len(nxt[0])
        return False


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


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
        commit_lock: Path | None = None,
        served_file: Path | None = None,
    ) -> None:
        self.ws, self.model_ref, self.threads, self.store_inputs = ws, model_ref, threads, store_inputs
        self.log_predictions, self.commit_lock, self.served_file = log_predictions, commit_lock, served_file
        self.model: OnnxModel | None = None
        self.batcher = Batcher(
            self._run_batch,
            max_batch_size=max_batch_size,
            max_delay_s=max_queue_delay_ms / 1000,
            max_queue=max_queue,
            on_batch=self._observe_batch,
            settled=_stored,
        )
        self.metrics = ServerMetrics(queue_depth=lambda: self.batcher.depth)
        self._switch_lock = asyncio.Lock()
        self._log: PredictionLog | None = None
        self._inferring = 0  # batches between the start of inference and handing their rows to the log
        self._inferring_lock = threading.Lock()

    def _busy(self) -> bool:
        """More predictions are on their way to the log: a batch is running, or requests are queued."""
        return self._inferring > 0 or self.batcher.depth > 0

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher.running

    async def start(self) -> None:
        await self.switch(self.model_ref, reason="start")
        if self.log_predictions:
            store = self.ws.store
            turn = contextlib.nullcontext if self.commit_lock is None else taking_turns(self.commit_lock)
            self._log = PredictionLog(
                functools.partial(log_predictions, store), asyncio.get_running_loop(), self._busy, turn=turn
            )
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        if self._log is not None:
            await asyncio.to_thread(self._log.close)

    async def switch(self, ref: str, reason: str = "admin") -> OnnxModel:
        """Serve ``ref`` (name@alias / name@version) from now on; a no-op if already served."""
        async with self._switch_lock:
            version = await asyncio.to_thread(get_model_version, self.ws, ref)
            if self.model is not None and self.model.version.id == version.id:
                return self.model
            model = await asyncio.to_thread(load_model, version, self.threads)
            self.model = model  # one reference swap: new requests use it, queued ones keep theirs
            self.model_ref = ref
            self.metrics.serving(version.name, str(version.version), version.sha256[:12])
            if self.served_file is not None:  # what the other workers of this server read (admin switch)
                await asyncio.to_thread(write_served, self.served_file, version.ref)
            log.info("serving %s (%s)", version.ref, reason)
            return model

    async def infer(self, model: OnnxModel, x: np.ndarray | list[str], endpoint: str) -> Answer:
        """Batch and run ``x`` (uint8 or [0, 1] float32, (N, C, H, W); a list of texts for a text model)
        on ``model``; the answer comes once its predictions are durably stored (unless
        ``feedback.log_predictions`` is off)."""
        answer: Answer = await self.batcher.submit(model, len(x), (x, endpoint))
        return answer

    def _run_batch(self, model: OnnxModel, items: Sequence[Item]) -> list[Answer]:
        with self._inferring_lock:
            self._inferring += 1
        try:
            logits, probs, latencies, tokens, rows = self._infer(model, items)
        finally:  # counted out before its rows reach the log, which then need not wait for this batch
            with self._inferring_lock:
                self._inferring -= 1
        if rows is None or self._log is None:  # log off: answers keep ids, nothing is recorded
            ids, stored = time_ordered_ids(len(logits)), None
        else:
            ids, stored = rows.ids, self._log.write(rows)
        self.metrics.predictions.labels(model.version.ref).inc(len(ids))
        answers, start = [], 0
        for item, latency in zip(items, latencies, strict=True):
            stop = start + item.size
            cut = None if tokens is None else (tokens.lengths[start:stop], tokens.truncated[start:stop])
            answers.append(
                Answer(model, logits[start:stop], probs[start:stop], ids[start:stop], latency, stored, cut)
            )
            start = stop
        return answers

    def _infer(
        self, model: OnnxModel, items: Sequence[Item]
    ) -> tuple[np.ndarray, np.ndarray, list[float], TokenBatch | None, PredictionRows | None]:
        """Logits, probabilities, each request's latency, a text batch's tokens, and the batch's
        prediction rows (None when predictions are not logged)."""
        pixels: np.ndarray | None = None  # the batch's uint8 images, when every request sent uint8
        if model.text is not None:
            tokens = encode(model.text, [text for item in items for text in item.payload[0]])
            self.metrics.sequence_length.observe(tokens.ids.shape[1])
            logits = model.text_logits(tokens)
        else:
            inputs = [item.payload[0] for item in items]
            if all(x.dtype == np.uint8 for x in inputs):  # the usual case: join, then convert once
                pixels = _join(inputs)
                x = as_model_input(pixels)
            else:  # a batch may mix uint8 pixels and [0, 1] floats: convert per request
                x = _join([as_model_input(x) for x in inputs])
            logits, tokens = model.logits(x), None
        probs = softmax(logits)
        done = time.perf_counter()
        latencies = [(done - item.enqueued) * 1000 for item in items]
        if self._log is None:
            return logits, probs, latencies, tokens, None
        endpoints = {item.payload[1] for item in items}
        each = np.repeat(latencies, [item.size for item in items]).tolist()
        endpoint = endpoints.pop() if len(endpoints) == 1 else "mixed"
        build: Callable[..., PredictionRows]
        if tokens is None:
            if pixels is None:
                pixels = _join([as_pixels(item.payload[0]) for item in items])
            build = functools.partial(new_prediction_rows, pixels)
        else:
            texts = [text for item in items for text in item.payload[0]]
            build = functools.partial(
                new_text_prediction_rows, texts, tokens.lengths.tolist(), tokens.unknown.tolist()
            )
        rows = build(
            probs,
            model.classes,
            model.version,
            latency_ms=each,
            endpoint=endpoint,
            store_input=self.store_inputs,
        )
        return logits, probs, latencies, tokens, rows

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.inference.observe(seconds)

    async def follow_champion(self, every_s: float) -> None:
        """Poll the champion alias of the served model's name and switch when it moves."""

        def champion() -> str | None:
            return None if self.model is None else f"{self.model.version.name}@champion"

        await self._follow(champion, every_s, "champion moved")

    async def follow_switches(self, path: Path, every_s: float) -> None:
        """Serve the model version that ``POST /admin/model`` on any worker of this server last wrote to
        ``path`` (``dcloop serve --workers N``): checked every ``every_s`` seconds."""

        def switched() -> str | None:
            ref = read_served(path)  # None: no switch yet
            return None if ref is None or (self.model is not None and self.model.version.ref == ref) else ref

        await self._follow(switched, every_s, "admin, on another worker", retry_s=SWITCH_RETRY_S)

    async def _follow(
        self, target: Callable[[], str | None], every_s: float, reason: str, retry_s: float = 0.0
    ) -> None:
        """Every ``every_s`` seconds serve what ``target()`` names (None: nothing to do; the model served
        already is a no-op). A failure keeps the current model, and the next try comes ``retry_s``
        later still."""
        while True:
            await asyncio.sleep(every_s)
            try:
                ref = target()
                if ref is not None:
                    await self.switch(ref, reason=reason)
            except Exception:
                log.exception("following a model switch (%s) failed", reason)
                await asyncio.sleep(retry_s)

    async def enforce_retention(self, every_s: float, **bounds: float | None) -> None:
        """Apply the prediction log's retention ``bounds`` (see ``store.retention.enforce_retention``)
        now and then every ``every_s`` seconds. Each pass leaves room for 1.5 times what the log grew
        by since the last one, so a fast writer stays under the size bound between passes."""
        room, after = 0, None
        while True:
            try:
                done = await asyncio.to_thread(enforce_retention, self.ws.store, room_bytes=room, **bounds)
                if done.log_bytes_before is not None and after is not None:
                    room = int(1.5 * max(0, done.log_bytes_before - after))
                after = done.log_bytes
                if done.inputs_cleared or done.rows_dropped:
                    log.info(
                        "retention cleared %d stored inputs, dropped %d predictions (log %s MB)",
                        done.inputs_cleared,
                        done.rows_dropped,
                        "?" if done.log_bytes is None else f"{done.log_bytes / 2**20:.1f}",
                    )
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(every_s)


def write_served(path: Path, ref: str) -> None:
    """Record in ``path`` (a file in the workers' shared folder) that ``ref`` is, or is to be, served."""
    write_text(path, json.dumps({"model": ref}))


def read_served(path: Path) -> str | None:
    """The model version ``write_served`` recorded in ``path``; None when there is no such file yet."""
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["model"])
    except FileNotFoundError:
        return None


def taking_turns(lock: Path) -> Callable[[], AbstractContextManager[None]]:
    """A context manager factory holding an exclusive lock on the file ``lock``: the prediction logs of
    a server's workers commit one after the other. A log that waits sleeps in the kernel until the
    lock is free, where SQLite's busy handler would poll with sleeps of 1 ms and more."""
    import fcntl

    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)  # open for the server's life, like the store

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    return turn


def _stored(answers: Sequence[Answer]) -> asyncio.Future[None] | None:
    """What a batch's answers wait for: the commit of their predictions (one future per batch)."""
    return answers[0].stored if answers else None


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
