"""Server metrics for Prometheus, kept and rendered by ``prometheus_client``.

One server process keeps its metrics in its own registry. Under ``dcloop serve --workers N`` every
worker is a process of its own, so the metrics use prometheus_client's multiprocess mode: the
launcher sets ``PROMETHEUS_MULTIPROC_DIR`` (:func:`multiprocess_dir`) before the workers start,
each worker writes its values to memory-mapped files there, and whichever worker answers /metrics
adds them all up. ``set_alert`` is the hook monitoring calls to raise or clear a named alert
(``dcloop_alert{name=...}``), shown by every server in this process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SEQUENCE_BUCKETS = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

_lock = threading.Lock()
_alerts: dict[str, float] = {}


def set_alert(name: str, value: float | bool = 1.0) -> None:
    """Set the ``dcloop_alert{name=...}`` gauge (1/True: firing, 0/False: clear) on every server here."""
    with _lock:
        _alerts[name] = float(value)


def clear_alerts() -> None:
    with _lock:
        _alerts.clear()


class _Alerts(Collector):
    """The alert gauges, read at scrape time from the process-wide table above."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "dcloop_alert", "Alerts raised by monitoring (1 firing, 0 clear).", labels=["name"]
        )
        with _lock:
            for name, value in sorted(_alerts.items()):
                family.add_metric([name], value)
        yield family


def multiprocess() -> bool:
    """Whether this process shares its metrics with sibling workers (the launcher set the folder)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ServerMetrics:
    """The metrics of one server app (or of one worker, summed with its siblings at scrape time)."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.queue_depth = queue_depth
        shared = multiprocess()
        # Shared values live in the workers' files, not in a registry; a lone server has its own.
        self._registry = None if shared else CollectorRegistry(auto_describe=True)
        into: dict[str, Any] = {"registry": self._registry}
        self.requests = Counter(
            "dcloop_requests", "HTTP requests by endpoint and status.", ["endpoint", "status"], **into
        )
        self.latency = Histogram(
            "dcloop_request_latency_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **into,
        )
        self.inference = Histogram(
            "dcloop_batch_latency_seconds",
            "Inference plus store commit time per batch.",
            buckets=LATENCY_BUCKETS,
            **into,
        )
        self.batch_size = Histogram(
            "dcloop_batch_size",
            "Inputs (images or texts) per inference batch.",
            buckets=BATCH_BUCKETS,
            **into,
        )
        self.sequence_length = Histogram(
            "dcloop_batch_sequence_length",
            "Tokens per text in a batch: its longest text, which the batch is padded to.",
            buckets=SEQUENCE_BUCKETS,
            **into,
        )
        self.predictions = Counter(
            "dcloop_predictions", "Predictions answered and stored.", ["model"], **into
        )
        self.errors = Counter("dcloop_errors", "Refused or failed requests by kind.", ["kind"], **into)
        # per worker under --workers (a pid label): workers switch models one by one
        self.model = Gauge(
            "dcloop_model_info",
            "The served model version (value 1).",
            ["model", "version", "sha256"],
            multiprocess_mode="liveall",
            **into,
        )
        self.switches = Counter("dcloop_model_switches", "Served-model switches.", **into)
        self.queue = Gauge(
            "dcloop_queue_depth", "Requests waiting for a batch.", multiprocess_mode="livesum", **into
        )
        self._served: tuple[str, str, str] | None = None
        self._children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
        if self._registry is not None:
            self._registry.register(_Alerts())

    def serving(self, model: str, version: str, sha256: str) -> None:
        """Mark the served model version (the previous one drops to 0) and count the switch.

        The new version is marked before the old one drops: under ``--workers N`` another worker may
        read this one's metric files between the two, and should then see it serving a version, never
        none."""
        previous, self._served = self._served, (model, version, sha256)
        self.model.labels(*self._served).set(1)
        if previous is not None and previous != self._served:
            self.model.labels(*previous).set(0)
        self.switches.inc()

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request by route template and status, with its latency and error kind."""
        children = self._children.get((endpoint, status))
        if children is None:  # labels() looks the child up under a lock: once per route and status
            children = self._children[endpoint, status] = (
                self.requests.labels(endpoint, str(status)),
                self.latency.labels(endpoint),
                self.errors.labels(_error_kind(status)) if status >= 400 else None,
            )
        requests, latency, errors = children
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    def render(self) -> str:
        self.queue.set(self.queue_depth())
        registry = self._registry
        if registry is None:  # every worker's files, read now
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            registry.register(_Alerts())
        return generate_latest(registry).decode("utf-8")


class MeasureRequests:
    """Pure ASGI middleware: requests and latency by route and status, errors by kind."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            record_request(scope, status, time.perf_counter() - start)


def record_request(scope: Any, status: int, seconds: float) -> None:
    """Count one answered request by route template and status, with its latency and error kind."""
    service = getattr(scope["app"].state, "service", None)  # set once the lifespan has started
    if service is not None:
        service.metrics.answered(getattr(scope.get("route"), "path", "unmatched"), status, seconds)


_ERROR_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    415: "unsupported",
    503: "busy",
}


def _error_kind(status: int) -> str:
    return _ERROR_KINDS.get(status, "bad_request" if status < 500 else "internal")


@contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """A fresh folder for the metric files of ``--workers`` processes (and the files through which they
    follow each other's model switches and take turns at the prediction log), named in the environment
    they inherit (so set it before they start); removed, and the environment restored, afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="dcloop-metrics-"))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)
