"""Property: no request makes the dashboard answer 5xx.

The server tests' seeded generator (tests/deploy/fuzzkit.py) supplies the bodies, headers and methods;
each request goes to a dashboard route with a query string of odd values (the generator's own), into
the real app in-process over the session's loop workspace. ``DCLOOP_UI_FUZZ_REQUESTS`` sets how many.
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from fuzzkit import _ODD_VALUES, Generator

SEED = int(os.environ.get("DCLOOP_FUZZ_SEED", "20261201"))
REQUESTS = int(os.environ.get("DCLOOP_UI_FUZZ_REQUESTS", "300"))
ROUTES = [
    "/", "/data", "/runs", "/runs/compare", "/runs/{run}", "/runs/{junk}", "/models", "/monitor",
    "/api/monitor", "/api/monitor/drift", "/serving", "/api/serving", "/plan", "/static/ui.js",
    "/static/{junk}", "/actions/promote", "/actions/rollback", "/actions/forget",
]  # fmt: skip
PARAMS = [
    "days",
    "model",
    "kind",
    "status",
    "version",
    "ids",
    "preset",
    "tokens",
    "count",
    "target_rps",
    "done",
]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL", "ignore::DeprecationWarning:PIL")


def _query(rng: random.Random, run_id: str) -> str:
    pairs = []
    for name in rng.sample(PARAMS, rng.randint(0, 4)):
        value = rng.choice([*_ODD_VALUES, run_id, f"{run_id},{run_id}", "train", "serve", "7", "-1", "1e309"])
        pairs.append(f"{quote(str(name))}={quote(str(value), safe='')}")
    return "?" + "&".join(pairs) if pairs else ""


def test_no_request_gets_a_5xx(loop_ws):
    from dcloop.store.runs import list_runs
    from dcloop.ui import create_app

    run_id = list_runs(loop_ws.store)[0].id
    app = create_app(loop_ws, token="s3cret", metrics_url="http://127.0.0.1:9/metrics")  # nothing listens
    gen = Generator(SEED, "0" * 32)
    rng = random.Random(SEED)
    seen: Counter[int] = Counter()
    with TestClient(app, raise_server_exceptions=True) as client:
        for _ in range(REQUESTS):
            req = gen.draw()
            path = rng.choice(ROUTES).format(
                run=run_id, junk=rng.choice(["%FF", "..%2F..", "x" * 300, "ui.css.map"])
            )
            method = "POST" if path.startswith("/actions") and rng.random() < 0.8 else req.method
            try:
                answer = client.request(
                    method, path + _query(rng, run_id), content=req.body, headers=req.header_dict()
                )
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeError):
                continue  # the client refused to send it: nothing reached the app
            seen[answer.status_code] += 1
            assert answer.status_code < 500, (method, path, req.kind, answer.status_code, answer.text[:300])
    assert sum(seen.values()) >= REQUESTS // 2
    assert seen[200] > 0 and any(400 <= s < 500 for s in seen)
