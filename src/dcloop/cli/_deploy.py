"""`dcloop serve`, `dcloop models register|versions|promote|rollback|history`, `dcloop feedback import|forget|retain`.

``feedback_app`` is a module attribute so other command modules can add to the `feedback` group.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import typer

from dcloop.cli._help import FieldHelp, field_help
from dcloop.cli._output import Format, note, print_json, print_mapping, print_table
from dcloop.cli._train import models_app

feedback_app = typer.Typer(help="Predictions, labels and what the store keeps of them.", no_args_is_help=True)
_FORMAT = typer.Option(Format.table, "--format", help="table or json.")


def serve(
    model: str = typer.Option(None, "--model", help=field_help("serve.model")),
    host: str = typer.Option(None, "--host", help=field_help("serve.host")),
    port: int = typer.Option(None, "--port", help=field_help("serve.port")),
    workers: str = typer.Option(None, "--workers", help=field_help("serve.workers")),
    token_env: str = typer.Option(None, "--token-env", help=field_help("serve.token_env")),
    follow_champion: bool = typer.Option(
        False, "--follow-champion", help="Switch whenever the champion alias moves."
    ),
    follow_every: float = typer.Option(5.0, "--follow-every", help="Seconds between champion polls."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Serve as Ray Serve replicas on the cluster (RAY_ADDRESS, cluster.address)."
    ),
    replicas: int = typer.Option(
        None,
        "--replicas",
        min=1,
        help="With --cluster: this many replicas (default: autoscale within cluster.serve_min_replicas "
        "and cluster.serve_max_replicas).",
    ),
) -> None:
    """Serve a model over HTTP: Open Inference Protocol v2, /predict, /feedback, /metrics.

    Examples: DCLOOP_TOKEN=secret dcloop serve --model animals@champion --port 8000 --follow-champion
              dcloop serve --cluster --replicas 2 --follow-champion   (Ray Serve replicas)
    """
    # A server's idle OpenMP threads sleep at once rather than spin (OpenMP's default, which training
    # keeps: its threads wait between many small kernels): set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dcloop.deploy import serve as run
    from dcloop.errors import ConfigError
    from dcloop.workspace import open_workspace

    if replicas is not None and not cluster:
        raise ConfigError(
            f"--replicas is only read with --cluster: dcloop serve --cluster --replicas {replicas}."
        )
    if cluster and workers is not None:
        raise ConfigError("--workers is for the single-process server; with --cluster use --replicas N.")
    follow = follow_every if follow_champion else None
    processes = None if workers is None else _workers(workers)
    if cluster:
        from dcloop.cluster import serve_on_cluster

        serve_on_cluster(
            open_workspace(),
            model,
            replicas=replicas,
            host=host,
            port=port,
            token_env=token_env,
            follow_champion_s=follow,
            on_start=lambda url, count: note(f"serving on {url} with {count} replicas (Ctrl-C stops)"),
        )
        return
    run(
        open_workspace(),
        model,
        host=host,
        port=port,
        workers=processes,
        token_env=token_env,
        follow_champion_s=follow,
        on_start=lambda url: note(f"serving {model or 'the champion'} on {url} (Ctrl-C stops)"),
    )


def _workers(value: str) -> int | Literal["auto"]:
    """``--workers``: a number of processes (1-64) or ``auto``."""
    from dcloop.errors import ConfigError

    given = value.strip()
    if given.lower() == "auto":
        return "auto"
    if not (given.isascii() and given.isdigit() and len(given) <= 2 and 1 <= int(given) <= 64):
        raise ConfigError(
            f"--workers must be a number of server processes from 1 to 64, or auto. Got {value[:20]!r}."
        )
    return int(given)


@models_app.command("register")
def register_version(
    source: str = typer.Argument(
        ..., help="A run id (or `latest`), an optimized variant id, or an .onnx file."
    ),
    name: str = typer.Option(None, "--name", help="Registry name (default: the data set's name)."),
    alias: str = typer.Option(
        None, "--alias", help="Point this alias (challenger or champion) at it, no gate."
    ),
    classes: str = typer.Option(None, "--classes", help="Comma-separated class names (an .onnx file only)."),
    dataset: str = typer.Option(
        None, "--dataset", help="Data set version id it was trained on (an .onnx file only)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Register a model version (exported to ONNX, content-addressed, with lineage).

    Example: dcloop models register 3f2a9c --alias challenger
    """
    from dcloop.deploy import mirror_registry, register_model_version
    from dcloop.workspace import open_workspace

    names = [c.strip() for c in classes.split(",")] if classes else None
    ws = open_workspace()
    version = register_model_version(ws, source, name=name, alias=alias, classes=names, dataset_id=dataset)
    mirror_registry(ws, version.name)
    _print_record(f"registered {version.ref}", _version_row(version, [alias] if alias else []), fmt)


@models_app.command("versions")
def versions(name: str = typer.Argument(..., help="Registry name."), fmt: Format = _FORMAT) -> None:
    """Every version of a model with its aliases, source and metrics."""
    from dcloop.deploy import list_model_versions
    from dcloop.workspace import open_workspace

    rows = [_version_row(v, aliases) for v, aliases in list_model_versions(open_workspace(), name)]
    if fmt is Format.json:
        print_json(rows)
    else:
        # what fits 80 columns; --format json adds the data set, variant, classes, sha256 and path
        columns = ["version", "aliases", "method", "run_id", "accuracy", "created_at"]
        print_table(f"{name} versions", columns, [[r[c] for c in columns] for r in rows])


@models_app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Registry name."),
    to: str = typer.Option("champion", "--to", help="Alias to move: champion (gated) or challenger."),
    version: int = typer.Option(None, "--version", help="Version to promote (default: the challenger)."),
    force: bool = typer.Option(
        False, "--force", help="Promote even if the gate refuses; the history records why."
    ),
    reason: str = typer.Option(None, "--reason", help="Why, recorded in the alias history."),
    fmt: Format = _FORMAT,
) -> None:
    """Move an alias; to champion only through the promotion gate (see the `gate` config section).

    Example: dcloop models promote animals            (challenger -> champion, gated)
    """
    from dcloop.deploy import mirror_registry
    from dcloop.deploy import promote as run
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    result = run(ws, name, to=to, version=version, force=force, reason=reason)
    mirror_registry(ws, name)
    data = _move_row(result.move)
    data["gate"] = (
        None
        if result.decision is None
        else {
            "passed": result.decision.passed,
            "reasons": result.decision.reasons,
            "metrics": result.decision.metrics,
        }
    )
    _print_record(f"{name}@{to} -> {result.move.to_version}", data, fmt)


@models_app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="Registry name."),
    reason: str = typer.Option(None, "--reason", help="Why, recorded in the alias history."),
    fmt: Format = _FORMAT,
) -> None:
    """Point the champion back at the version it held before its latest promotion."""
    from dcloop.deploy import mirror_registry
    from dcloop.deploy import rollback as run
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    move = run(ws, name, reason=reason)
    mirror_registry(ws, name)
    _print_record(f"{name}@champion -> {move.to_version}", _move_row(move), fmt)


@models_app.command("history")
def history(
    name: str = typer.Argument(..., help="Registry name."),
    alias: str = typer.Option(None, "--alias", help="Only this alias."),
    fmt: Format = _FORMAT,
) -> None:
    """Every alias move of a model: when, which alias, from and to which version, why and who."""
    from dcloop.deploy import alias_history
    from dcloop.workspace import open_workspace

    rows = [_move_row(m) for m in alias_history(open_workspace(), name, alias)]
    if fmt is Format.json:
        print_json(rows)
    else:
        columns = ["at", "alias", "from_version", "to_version", "kind", "actor", "reason"]
        print_table(f"{name} alias history", columns, [[r[c] for c in columns] for r in rows])


@feedback_app.command("import")
def feedback_import(
    path: Path = typer.Argument(..., help="CSV (prediction_id,label header) or JSONL file."),
    fmt: Format = _FORMAT,
) -> None:
    """Attach true labels to stored predictions in bulk; all or nothing.

    Example: dcloop feedback import labels.csv
    """
    from dcloop.feedback import import_labels
    from dcloop.workspace import open_workspace

    count = import_labels(open_workspace().store, path)
    _print_record("labels stored", {"file": str(path), "labels": count}, fmt)


@feedback_app.command("export")
def feedback_export(
    model: str = typer.Option(None, "--model", help="Only this registry name's predictions."),
    since: datetime = typer.Option(None, "--since", help="Only predictions from this date on (UTC)."),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="Only predictions with no label yet."),
    order: str = typer.Option(
        "time", "--order", help="time (oldest first) or confidence (least confident first)."
    ),
    limit: int = typer.Option(None, "--limit", help="At most this many rows."),
    images: Path = typer.Option(
        None, "--images", help="A new folder for the kept images, one <prediction_id>.png each."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Write here (default: standard output)."),
    file_format: str = typer.Option("csv", "--format", help="csv or jsonl."),
) -> None:
    """Write kept predictions out for labelling: prediction_id, label (empty until labelled), the
    predicted class, confidence, model, time and input. Fill in labels and `dcloop feedback import`
    the file; rows left empty are skipped.

    Example: dcloop feedback export --unlabelled --order confidence --limit 200 --images todo/ -o todo.csv
    """
    from dcloop.errors import ConfigError
    from dcloop.feedback._export import export_predictions, write_rows
    from dcloop.workspace import open_workspace

    if order not in ("time", "confidence"):
        raise ConfigError(f"--order must be time or confidence. Got {order!r}.")
    if file_format not in ("csv", "jsonl"):
        raise ConfigError(f"--format must be csv or jsonl. Got {file_format!r}.")
    when = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    rows = export_predictions(
        open_workspace().store,
        model_name=model,
        since=when,
        unlabelled=unlabelled,
        order=order,  # type: ignore[arg-type]
        limit=limit,
        images=images,
    )
    text = write_rows(rows, file_format, out)  # type: ignore[arg-type]
    if text is not None:
        typer.echo(text, nl=False)
    else:
        note(f"{len(rows)} predictions written to {out}" + (f", images in {images}" if images else ""))


@feedback_app.command("forget")
def feedback_forget(
    ids: list[str] = typer.Option(None, "--ids", help="Prediction ids (repeat or comma-separate)."),
    before: datetime = typer.Option(
        None, "--before", help="Forget inputs of predictions before this date (UTC)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Delete stored inputs (privacy), keeping class, confidence, label and summary statistics.

    Example: dcloop feedback forget --before 2026-01-01
    """
    from dcloop.feedback import forget
    from dcloop.workspace import open_workspace

    wanted = [i.strip() for chunk in ids for i in chunk.split(",") if i.strip()] if ids else None
    when = before.replace(tzinfo=UTC) if before is not None and before.tzinfo is None else before
    count = forget(open_workspace().store, ids=wanted, before=when)
    _print_record("inputs forgotten", {"forgotten": count}, fmt)


@feedback_app.command("retain")
def feedback_retain(fmt: Format = _FORMAT) -> None:
    """Apply the feedback retention bounds of dcloop.yaml now, as a running server does every
    feedback.retention_every_s: clear old inputs, drop old unlabelled predictions (kept as hourly
    aggregates), hand free SQLite pages back.

    Example: dcloop feedback retain
    """
    from dcloop.feedback import enforce_retention
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    fb = ws.config.feedback
    done = enforce_retention(
        ws.store,
        input_days=fb.retention_days,
        max_input_mb=fb.max_input_mb,
        prediction_days=fb.prediction_days,
        max_predictions_mb=fb.max_predictions_mb,
    )
    record = {
        "inputs_cleared": done.inputs_cleared,
        "predictions_dropped": done.rows_dropped,
        "log_mb": None if done.log_bytes is None else round(done.log_bytes / 2**20, 3),
        "freed_mb": round(done.freed_bytes / 2**20, 3),
    }
    _print_record("feedback retention", record, fmt)


def _version_row(v: Any, aliases: list[str]) -> dict[str, Any]:
    return {
        "version": v.version,
        "ref": v.ref,
        "aliases": ",".join(aliases),
        "method": v.method,
        "run_id": v.run_id,
        "dataset_id": v.dataset_id,
        "variant_id": v.variant_id,
        "accuracy": v.metrics.get("accuracy"),
        "classes": v.classes,
        "input_shape": v.input_shape,
        "sha256": v.sha256[:12],
        "path": v.path,
        "created_at": v.created_at.isoformat(timespec="seconds"),
    }


def _move_row(m: Any) -> dict[str, Any]:
    return {
        "at": m.at.isoformat(timespec="seconds"),
        "alias": m.alias,
        "from_version": m.from_version,
        "to_version": m.to_version,
        "kind": m.kind,
        "actor": m.actor,
        "reason": m.reason,
    }


def _print_record(title: str, data: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        print_json(data)
    else:
        print_mapping(title, data)


def register(app: typer.Typer) -> None:
    app.command("serve", cls=FieldHelp)(serve)
    app.add_typer(feedback_app, name="feedback")
