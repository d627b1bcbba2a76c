"""The Serving page's figures, read from a running server's Prometheus ``/metrics``.

Rates need two scrapes: :class:`Scraper` keeps the previous one and answers requests/s over the time
between them (the page polls, so the second figure comes a few seconds after the first).
Percentiles are interpolated inside histogram buckets, as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 4 * 1024 * 1024


@dataclass
class Scrape:
    at: float
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def total(self, name: str, **match: str) -> float:
        return sum(
            v for labels, v in self.samples.get(name, []) if all(labels.get(k) == m for k, m in match.items())
        )

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, value in self.samples.get(name, []):
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
        return out


def parse(text: str) -> Scrape:
    """Samples by name from Prometheus text; a malformed exposition is a ValueError."""
    from prometheus_client.parser import text_string_to_metric_families

    scrape = Scrape(time.monotonic())
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return scrape


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``{le: count}`` (None when it is empty)."""
    edges = sorted((float("inf") if le == "+Inf" else float(le), n) for le, n in buckets.items() if le)
    if not edges or edges[-1][1] <= 0:
        return None
    rank, lower, below = q * edges[-1][1], 0.0, 0.0
    for upper, count in edges:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0.0)
        lower, below = upper, count
    return lower


def summarize(now: Scrape, before: Scrape | None) -> dict[str, Any]:
    """The page's figures from the newest scrape (and the previous one, for rates)."""
    latency = now.by("dcloop_request_latency_seconds_bucket", "le")
    batch = now.by("dcloop_batch_size_bucket", "le")
    batches = now.total("dcloop_batch_size_count")
    requests = now.total("dcloop_requests_total")
    rate = None
    if before is not None and now.at > before.at:
        rate = max(requests - before.total("dcloop_requests_total"), 0.0) / (now.at - before.at)
    return {
        "requests": requests,
        "requests_per_s": rate,
        "latency_ms": {f"p{int(q * 100)}": _ms(quantile(q, latency)) for q in (0.5, 0.9, 0.95, 0.99)},
        "batches": batches,
        "mean_batch_size": now.total("dcloop_batch_size_sum") / batches if batches else None,
        "batch_sizes": {le: n for le, n in sorted(batch.items(), key=lambda kv: _edge(kv[0]))},
        "queue_depth": now.total("dcloop_queue_depth"),
        "errors": now.by("dcloop_errors_total", "kind"),
        "status": now.by("dcloop_requests_total", "status"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _edge(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)


class Scraper:
    """Fetches ``url`` and keeps the previous scrape, so each summary can give a rate."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url, self.timeout_s = url, timeout_s
        self._last: Scrape | None = None
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        """The summary, or ``{"error": one line}`` when the server cannot be read."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as answer:
                text = answer.read(MAX_BYTES).decode("utf-8", "replace")
            now = parse(text)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            return {"error": f"Cannot read {self.url}: {getattr(exc, 'reason', exc)}."}
        with self._lock:
            before, self._last = self._last, now
        return summarize(now, before)
