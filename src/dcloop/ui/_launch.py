"""``serve_ui``: the dashboard on a uvicorn server, read-only unless the token's variable is set."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlsplit

from dcloop.errors import ConfigError
from dcloop.workspace import Workspace

DEFAULT_PORT = 8100


def check_metrics_url(url: str | None) -> None:
    """A server's /metrics URL must be http(s) with a host; anything else is refused before starting."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"--metrics-url must be an http(s) URL such as http://127.0.0.1:8000/metrics. Got {url!r}."
        )


def serve_ui(
    ws: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token_env: str | None = None,
    metrics_url: str | None = None,
    on_start: Callable[[str, bool], None] | None = None,
) -> None:
    """Serve the dashboard of ``ws`` until interrupted. The token is read from ``token_env``
    (default: ``serve.token_env``, the server's); without it the dashboard is read-only."""
    import uvicorn

    from dcloop.ui._app import create_app

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535. Got {port}.")
    check_metrics_url(metrics_url)
    token = os.environ.get(token_env or ws.config.serve.token_env) or None
    app = create_app(ws, token=token, metrics_url=metrics_url, warm=True)
    if on_start is not None:
        on_start(f"http://{host}:{port}/", token is not None)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
