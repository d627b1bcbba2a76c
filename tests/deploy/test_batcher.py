"""The dynamic batcher on its own: batching, grouping by model, the queue bound."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dcloop.deploy._batcher import Batcher, QueueFull


def test_concurrent_requests_share_batches_and_get_their_own_answers() -> None:
    seen: list[int] = []

    def run(model, items):
        seen.append(sum(i.size for i in items))
        return [(model, i.payload) for i in items]

    async def main():
        batcher = Batcher(run, max_batch_size=8, max_delay_s=0.05, max_queue=100)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit("m", 1, n) for n in range(20)))
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results == [("m", n) for n in range(20)]
    assert sum(seen) == 20 and max(seen) == 8 and len(seen) < 20


def test_a_batch_never_mixes_models() -> None:
    batches: list[set[str]] = []

    def run(model, items):
        batches.append({i.model for i in items})
        return [i.model for i in items]

    async def main():
        batcher = Batcher(run, max_batch_size=64, max_delay_s=0.05, max_queue=100)
        batcher.start()
        models = ["old"] * 5 + ["new"] * 5 + ["old"] * 2
        results = await asyncio.gather(*(batcher.submit(m, 1, None) for m in models))
        await batcher.stop()
        return models, results

    models, results = asyncio.run(main())
    assert results == models
    assert all(len(b) == 1 for b in batches)


def test_queue_bound_and_failures_reach_every_caller() -> None:
    release, started = threading.Event(), threading.Event()

    def run(model, items):
        started.set()
        release.wait(timeout=30)
        if model == "bad":
            raise RuntimeError("session failed")
        return [None for _ in items]

    async def main():
        batcher = Batcher(run, max_batch_size=1, max_delay_s=0.0, max_queue=1, concurrency=1)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("bad", 1, None))
        assert await asyncio.to_thread(started.wait, 30)  # the first batch runs (and blocks)
        second = asyncio.ensure_future(batcher.submit("ok", 1, None))
        for _ in range(100):  # the only slot is busy: the second request stays queued
            await asyncio.sleep(0)
        assert batcher.depth == 1
        with pytest.raises(QueueFull):
            await batcher.submit("ok", 1, None)
        release.set()
        with pytest.raises(RuntimeError, match="session failed"):
            await first
        assert await second is None
        await batcher.stop()

    asyncio.run(main())


def test_the_prediction_log_commits_waiting_batches_together_and_reports_failures() -> None:
    from dcloop.deploy._service import PredictionLog
    from dcloop.store.predictions import PredictionRows

    commits: list[list[str]] = []
    first_commit_started, release_first_commit = threading.Event(), threading.Event()

    def write(rows: PredictionRows) -> None:
        commits.append(rows.ids)
        if len(commits) == 1:
            first_commit_started.set()
            release_first_commit.wait(30)
        if "bad" in rows.ids:
            raise RuntimeError("disk full")

    def rows(*ids: str) -> PredictionRows:
        return PredictionRows({"id": list(ids)})

    async def main() -> None:
        log = PredictionLog(write, asyncio.get_running_loop())
        first = log.write(rows("a"))
        await asyncio.to_thread(first_commit_started.wait, 30)
        waiting = [log.write(rows("b")), log.write(rows("c", "d"))]
        assert not first.done(), "answered before its rows were committed"
        release_first_commit.set()
        await asyncio.gather(first, *waiting)
        assert commits == [["a"], ["b", "c", "d"]], "batches queued during a commit share the next one"
        with pytest.raises(RuntimeError, match="disk full"):
            await log.write(rows("bad"))
        await log.write(rows("e"))  # the log keeps working after a failed commit
        pending = log.write(rows("f"))
        await asyncio.to_thread(log.close)
        await pending  # closing commits what was queued
        assert commits[-2:] == [["e"], ["f"]]

    asyncio.run(main())


def test_while_more_rows_are_on_their_way_the_log_waits_for_them_and_alone_it_commits_at_once() -> None:
    from dcloop.deploy._service import PredictionLog
    from dcloop.store.predictions import PredictionRows

    commits: list[list[str]] = []

    def rows(name: str) -> PredictionRows:
        return PredictionRows({"id": [name]})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # busy, with a linger far longer than the test: only a full group ends the wait
        busy = PredictionLog(lambda r: commits.append(r.ids), loop, lambda: True, 60.0)
        busy.MAX_GROUP_ROWS = 3
        await asyncio.wait_for(
            asyncio.gather(busy.write(rows("a")), busy.write(rows("b")), busy.write(rows("c"))), 30
        )
        assert commits == [["a", "b", "c"]], "batches arriving while busy share one commit"
        await asyncio.to_thread(busy.close)
        idle = PredictionLog(lambda r: commits.append(r.ids), loop, lambda: False, 60.0)
        await asyncio.wait_for(idle.write(rows("d")), 30)  # not busy: committed at once, not after 60 s
        await asyncio.wait_for(idle.write(rows("e")), 30)
        assert commits[1:] == [["d"], ["e"]]
        await asyncio.to_thread(idle.close)

    asyncio.run(main())


def test_rows_that_arrive_while_the_log_waits_for_its_turn_join_the_commit_it_then_makes() -> None:
    """Where the workers of one server take turns at the store, a log that waited for the other's
    commit takes in what arrived meanwhile: fewer commits, and no row waits a further turn."""
    import contextlib
    import threading
    from collections.abc import Iterator

    from dcloop.deploy._service import PredictionLog
    from dcloop.store.predictions import PredictionRows

    commits: list[list[str]] = []
    waiting_for_turn, turn_free = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def turn() -> Iterator[None]:  # the other worker commits until turn_free is set
        waiting_for_turn.set()
        turn_free.wait(30)
        yield

    def rows(*ids: str) -> PredictionRows:
        return PredictionRows({"id": list(ids)})

    async def main() -> None:
        log = PredictionLog(lambda r: commits.append(r.ids), asyncio.get_running_loop(), turn=turn)
        first = log.write(rows("a"))
        await asyncio.to_thread(waiting_for_turn.wait, 30)
        later = [log.write(rows("b")), log.write(rows("c", "d"))]
        turn_free.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 30)
        assert commits == [["a", "b", "c", "d"]], "rows queued during the wait share its commit"
        last = log.write(rows("e"))
        await asyncio.to_thread(log.close)
        await last
        assert commits[-1] == ["e"]

    asyncio.run(main())
