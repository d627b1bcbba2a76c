"""`dcloop ui`: the web dashboard of the workspace."""

from __future__ import annotations

import typer

from dcloop.cli._output import note


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; loopback unless you mean to expose it."
    ),
    port: int = typer.Option(8100, "--port", help="TCP port to listen on."),
    metrics_url: str = typer.Option(
        None, "--metrics-url", help="A running server's /metrics (default: serve.host and serve.port)."
    ),
    token_env: str = typer.Option(
        None, "--token-env", help="Variable holding the token that allows changes (default: serve.token_env)."
    ),
) -> None:
    """Open the dashboard: the loop, data, runs, models, monitoring, serving and planning, live.

    Read-only unless the token variable is set; promote, roll back and forget then ask for it.

    Example: DCLOOP_TOKEN=secret dcloop ui --port 8100 --metrics-url http://127.0.0.1:8000/metrics
    """
    from dcloop.ui import serve_ui
    from dcloop.workspace import open_workspace

    def started(url: str, writable: bool) -> None:
        note(f"dashboard on {url} ({'changes need the token' if writable else 'read-only'}; Ctrl-C stops)")

    serve_ui(
        open_workspace(), host=host, port=port, token_env=token_env, metrics_url=metrics_url, on_start=started
    )
