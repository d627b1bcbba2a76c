"""Dynamic batching: concurrent requests share one inference call.

A single worker task forms a batch whenever one of ``concurrency`` slots is free: it takes the queued
requests (up to ``max_batch_size`` images, all for the same loaded model, so a model switch never
mixes sessions inside a batch), waiting up to ``max_delay_s`` for more, and runs the batch in a
thread. While every slot is busy, requests wait in the queue, so batches grow with load. A request's
future resolves only after its batch has run and, where ``settled`` gives a future for the batch's
results (their predictions being stored), after that future: the batch task waits for it once, its
slot already free, instead of every request waiting on it. The queue is bounded: ``submit`` raises
``QueueFull`` beyond ``max_queue`` waiting requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher's queue is at its bound; the caller should answer 503 with Retry-After."""


@dataclass
class Item:
    """One request: ``model`` it was validated against, its ``size`` in images, a payload and the
    future its caller awaits."""

    model: Any
    size: int
    payload: Any
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


RunBatch = Callable[[Any, Sequence[Item]], Sequence[Any]]


class Batcher:
    """``await submit(model, size, payload)`` returns what ``run_batch(model, items)`` gave that item."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        concurrency: int = 2,
        on_batch: Callable[[int, float], None] | None = None,
        settled: Callable[[Sequence[Any]], Awaitable[None] | None] | None = None,
    ) -> None:
        self.run_batch, self.on_batch, self.settled = run_batch, on_batch, settled
        self.max_batch_size, self.max_delay_s, self.max_queue = max_batch_size, max_delay_s, max_queue
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="dcloop-batch")
        self._running: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="dcloop-batcher")

    async def stop(self) -> None:
        """Finish every queued and running batch, then stop the worker."""
        while self._items or self._running:
            self._wake.set()
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def submit(self, model: Any, size: int, payload: Any) -> Any:
        if len(self._items) >= self.max_queue:
            raise QueueFull
        item = Item(model, size, payload, asyncio.get_running_loop().create_future())
        self._items.append(item)
        self._wake.set()
        return await item.future

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()  # while every slot is busy, requests wait (and batch up) in the queue
            while not self._items:
                self._wake.clear()
                await self._wake.wait()
            batch = await self._collect()
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self) -> list[Item]:
        first = self._items.popleft()
        batch, size = [first], first.size
        deadline = time.perf_counter() + self.max_delay_s
        while size < self.max_batch_size:
            if self._items:
                nxt = self._items[0]
                if nxt.model is not first.model or size + nxt.size > self.max_batch_size:
                    break
                batch.append(self._items.popleft())
                size += nxt.size
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        return batch

    async def _run(self, batch: list[Item]) -> None:
        start = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, self.run_batch, batch[0].model, batch)
        except Exception as exc:
            log.exception("inference batch of %d requests failed", len(batch))
            _fail(batch, exc)
            return
        finally:
            self._slots.release()
            if self.on_batch is not None:
                self.on_batch(sum(i.size for i in batch), time.perf_counter() - start)
        pending = None if self.settled is None else self.settled(results)
        if pending is not None:
            try:
                await pending
            except Exception as exc:  # its own owner has logged why
                _fail(batch, exc)
                return
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():  # a caller that gave up has cancelled it
                item.future.set_result(result)


def _fail(batch: list[Item], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
