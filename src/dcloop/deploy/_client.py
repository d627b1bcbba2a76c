"""An in-process HTTP client of a server app, for checks and simulated traffic without a socket."""

from __future__ import annotations

import warnings
from typing import Any


def in_process_client(app: Any) -> Any:
    """Starlette's in-process client of ``app`` (the app's lifespan runs when it is entered)."""
    with warnings.catch_warnings():  # Starlette nudges towards a newer httpx; the client works the same
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient
    return TestClient(app)
