"""`dcloop optimize`, `dcloop tune`, `dcloop variants list/show`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer

from dcloop.cli._help import FieldHelp, field_help
from dcloop.cli._output import Format, note, print_json, print_mapping, print_table

variants_app = typer.Typer(
    help="Optimized variants of trained runs (ONNX, int8, pruned, distilled).", no_args_is_help=True
)
_FORMAT = typer.Option(Format.table, "--format", help="table or json.")


_SHOWN = ["variant", "method", "accuracy %", "drop (pts)", "size KiB", "p50 ms", "p99 ms", "img/s @256"]


def optimize(
    run: str = typer.Argument(..., help="Run id or unique prefix (`dcloop runs list`), or `latest`."),
    methods: str = typer.Option(
        None,
        "--methods",
        help="Comma list of onnx,int8,prune,distill (default: optimize.methods; a text run's onnx step "
        "also makes the fused transformer graph, and its int8 is dynamic).",
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Make, measure and record deployable variants of a trained run, and recommend one.

    Examples: dcloop optimize 3f2a9c
              dcloop optimize 3f2a9c --methods onnx,int8
    """
    from dcloop.optimize import optimize as optimize_run
    from dcloop.optimize._report import COLUMNS, columns, variant_row
    from dcloop.workspace import open_workspace

    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods is not None else None
    result = optimize_run(open_workspace(), run, methods=chosen)
    if fmt is Format.json:
        print_json(
            {
                "id": result.id,
                "run_id": result.run_id,
                "recommended": result.recommended.id,
                "rule": result.rule,
                "report": str(result.report_path),
                "variants": [_variant_json(v) for v in result.variants],
            }
        )
        return
    # the columns that fit 80: the report and --format json have every measurement
    shown = [COLUMNS.index(c) for c in _SHOWN]
    named = columns(result.variants)
    rows = [[row[i] for i in shown] for row in map(variant_row, result.variants)]
    print_table(f"variants of run {result.run_id[:12]}", [named[i] for i in shown], rows)
    note(f"recommended: {result.recommended.id[:12]} ({result.recommended.method}) - {result.rule}")
    note(f"report: {result.report_path}")


def tune(
    trials: int = typer.Option(None, "--trials", min=1, help=field_help("tune.trials")),
    workers: int = typer.Option(None, "--workers", min=1, help=field_help("tune.workers")),
    storage: str = typer.Option(None, "--storage", help=field_help("tune.storage")),
    study: str = typer.Option(None, "--study", help=field_help("tune.study")),
    resume: bool = typer.Option(
        False, "--resume", help="Continue a killed study: run only the missing trials."
    ),
    timeout: float = typer.Option(None, "--timeout", min=0.001, help=field_help("tune.timeout_s")),
    cluster: bool = typer.Option(
        False, "--cluster", help="Run the workers as Ray tasks on the cluster (RAY_ADDRESS, cluster.address)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Search hyperparameters over `tune.space`; each trial is a tracked run (kind trial).

    Examples: dcloop tune --trials 20 --workers 2
              dcloop tune --resume                        (after a kill: finish the missing trials)
              dcloop tune --storage postgresql+psycopg://user@db/optuna --study team   (on every machine)
              dcloop tune --cluster --workers 4           (trials as Ray tasks; the study in a shared store)
    """
    from dcloop.optimize import tune as tune_study
    from dcloop.workspace import open_workspace

    run = tune_study
    if cluster:
        from dcloop.cluster import tune_on_cluster as run
    result = run(
        open_workspace(),
        trials=trials,
        workers=workers,
        storage=storage,
        study=study,
        resume=resume,
        timeout_s=timeout,
    )
    if fmt is Format.json:
        data = asdict(result)
        data.update(best_config_path=str(result.best_config_path), report_path=str(result.report_path))
        print_json(data)
        return
    print_table(
        f"study {result.study}",
        ["trial", "state", result.metric, "epochs", "run", "params"],
        [
            [r["trial"], r["state"], r["value"], r["epochs"], r["run"], _short(r["params"])]
            for r in result.trials
        ],
    )
    default = "" if result.default_value is None else f" (current config: {result.default_value:.4f})"
    note(
        f"{result.complete} complete, {result.pruned} pruned, {result.failed} failed of {result.total}. "
        f"Best: trial {result.best_trial}, {result.metric} {result.best_value:.4f}{default}."
    )
    note(f"best config: {result.best_config_path}")
    note(f"report: {result.report_path}")


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _variant_json(variant: Any) -> dict[str, Any]:
    data = asdict(variant)
    data["created_at"] = variant.created_at.isoformat()
    return data


@variants_app.command("list")
def list_cmd(
    run: str = typer.Option(None, "--run", help="Only variants of this run (id or prefix)."),
    fmt: Format = _FORMAT,
) -> None:
    """Recorded variants, oldest first."""
    from dcloop.optimize import list_variants
    from dcloop.workspace import open_workspace

    variants = list_variants(open_workspace(), run=run)
    if fmt is Format.json:
        print_json([_variant_json(v) for v in variants])
        return
    rows = [
        [
            v.id[:12],
            v.run_id[:12],
            v.method + (" *" if v.metrics.get("recommended") else ""),
            round(100 * v.metrics["accuracy"], 2),
            v.metrics["size_bytes"],
            round(v.metrics["latency_p50_ms"], 3),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for v in variants
    ]
    print_table(
        "variants (* recommended)", ["id", "run", "method", "accuracy %", "bytes", "p50 ms", "created"], rows
    )


@variants_app.command("show")
def show(ref: str = typer.Argument(..., help="Variant id or unique prefix."), fmt: Format = _FORMAT) -> None:
    """One variant: lineage, parameters, metrics and ONNX path."""
    from dcloop.optimize import get_variant
    from dcloop.workspace import open_workspace

    variant = get_variant(open_workspace(), ref)
    if fmt is Format.json:
        print_json(_variant_json(variant))
        return
    data = _variant_json(variant)
    metrics = data.pop("metrics")
    print_mapping(f"variant {variant.id[:12]}", data)
    print_mapping("metrics (test split, ONNX Runtime)", metrics)


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
    app.command("tune", cls=FieldHelp)(tune)
    app.add_typer(variants_app, name="variants")
