"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Counters, gauges and histograms with labels; ``set_alert`` is the hook monitoring calls to raise or
clear a named alert (``dcloop_alert{name=...}``), shown by every server in this process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

_lock = threading.Lock()
_alerts: dict[str, float] = {}


def set_alert(name: str, value: float | bool = 1.0) -> None:
    """Set the ``dcloop_alert{name=...}`` gauge (1/True: firing, 0/False: clear) on every server here."""
    with _lock:
        _alerts[name] = float(value)


def clear_alerts() -> None:
    with _lock:
        _alerts.clear()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Metric:
    """One metric family: counter or gauge (a value per label set) or histogram."""

    def __init__(
        self, name: str, help_text: str, kind: str, labels: Sequence[str] = (), buckets: Sequence[float] = ()
    ):
        self.name, self.help, self.kind, self.label_names = name, help_text, kind, tuple(labels)
        self.buckets = tuple(buckets)
        self._values: dict[tuple[str, ...], float] = {}
        self._hist: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with _lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def set(self, value: float, *labels: str, only: bool = False) -> None:
        """Set a gauge; ``only`` drops every other label set (e.g. the served model version)."""
        with _lock:
            if only:
                self._values.clear()
            self._values[labels] = float(value)

    def observe(self, value: float, *labels: str) -> None:
        with _lock:
            row = self._hist.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with _lock:
            if self.kind != "histogram":
                for labels, value in sorted(self._values.items()):
                    lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
                return lines
            for labels, row in sorted(self._hist.items()):
                for bound, count in zip(
                    (*self.buckets, math.inf), (*row[: len(self.buckets)], row[-1]), strict=True
                ):
                    le = f'le="{_number(bound)}"'
                    lines.append(
                        f"{self.name}_bucket{_labels(self.label_names, labels, le)} {_number(count)}"
                    )
                lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {_number(row[-2])}")
                lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {_number(row[-1])}")
        return lines


class ServerMetrics:
    """The metrics of one server app."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.queue_depth = queue_depth
        self.requests = Metric(
            "dcloop_requests_total",
            "HTTP requests by endpoint and status.",
            "counter",
            ("endpoint", "status"),
        )
        self.latency = Metric(
            "dcloop_request_latency_seconds",
            "HTTP request latency by endpoint.",
            "histogram",
            ("endpoint",),
            LATENCY_BUCKETS,
        )
        self.inference = Metric(
            "dcloop_batch_latency_seconds",
            "Inference plus store commit time per batch.",
            "histogram",
            (),
            LATENCY_BUCKETS,
        )
        self.batch_size = Metric(
            "dcloop_batch_size", "Images per inference batch.", "histogram", (), BATCH_BUCKETS
        )
        self.predictions = Metric(
            "dcloop_predictions_total", "Predictions answered and stored.", "counter", ("model",)
        )
        self.errors = Metric(
            "dcloop_errors_total", "Refused or failed requests by kind.", "counter", ("kind",)
        )
        self.model = Metric(
            "dcloop_model_info",
            "The served model version (value 1).",
            "gauge",
            ("model", "version", "sha256"),
        )
        self.switches = Metric("dcloop_model_switches_total", "Served-model switches.", "counter")

    def render(self) -> str:
        families = [
            self.requests,
            self.latency,
            self.inference,
            self.batch_size,
            self.predictions,
            self.errors,
        ]
        lines = [line for family in (*families, self.model, self.switches) for line in family.render()]
        lines += [
            "# HELP dcloop_queue_depth Requests waiting for a batch.",
            "# TYPE dcloop_queue_depth gauge",
        ]
        lines.append(f"dcloop_queue_depth {self.queue_depth()}")
        lines += [
            "# HELP dcloop_alert Alerts raised by monitoring (1 firing, 0 clear).",
            "# TYPE dcloop_alert gauge",
        ]
        with _lock:
            lines += [f'dcloop_alert{{name="{_escape(n)}"}} {_number(v)}' for n, v in sorted(_alerts.items())]
        return "\n".join(lines) + "\n"


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
            service = getattr(scope["app"].state, "service", None)  # set once the lifespan has started
            if service is not None:
                endpoint = getattr(scope.get("route"), "path", "unmatched")
                service.metrics.requests.inc(endpoint, str(status))
                service.metrics.latency.observe(time.perf_counter() - start, endpoint)
                if status >= 400:
                    service.metrics.errors.inc(_error_kind(status))


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
