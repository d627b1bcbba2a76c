"""The dcloop command line: parse, call one stage function, print. No logic lives here.

Heavy libraries (torch, onnxruntime, mlflow, optuna) are imported inside commands so that
``dcloop --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from dcloop.cli import _cluster, _data, _deploy, _loop, _optimize, _plan, _predict, _train, _ui, _workspace
from dcloop.cli._output import err_console

app = typer.Typer(
    name="dcloop",
    help="Run the whole life of a model as one loop: data, training, optimization, deployment, feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_debug = False


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v, -vv)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    global _debug
    _debug = debug or os.environ.get("DCLOOP_DEBUG") == "1"
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dcloop").setLevel(level)
    if not verbose:
        # notices printed on import about optional kernels this build lacks (CUDA, Triton), not errors
        for noisy in ("torchao", "torch.utils._pytree"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    from dcloop import progress

    progress.enable(not quiet and err_console.is_terminal, console=err_console)


_workspace.register(app)
_data.register(app)
_train.register(app)
_optimize.register(app)
_deploy.register(app)
_predict.register(app)
_plan.register(app)
_loop.register(app)
_ui.register(app)
_cluster.register(app)


def main() -> None:
    """Console-script entry point: one-line errors and non-zero exits for DcloopError."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from rich.markup import escape

    from dcloop.errors import DcloopError

    try:
        app(standalone_mode=True)
    except DcloopError as exc:
        if _debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
