"""`dcloop monitor`, `dcloop retrain`, `dcloop loop`, `dcloop demo`: the commands that close the loop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from dcloop.cli import _controller
from dcloop.cli._output import Format, note, print_json, print_mapping, print_table

_FORMAT = typer.Option(Format.table, "--format", help="table or json.")
_MODEL = typer.Option(None, "--model", help="Registered model name (default: the only one).")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    from dcloop.errors import ConfigError

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since must be an ISO date or time (2026-05-01 or 2026-05-01T12:00). Got {text!r}."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def monitor(
    model: str = _MODEL,
    since: str = typer.Option(None, "--since", help="Only predictions at or after this ISO date/time (UTC)."),
    report: Path = typer.Option(None, "--report", help="Write an HTML report here."),
    fail_on_alert: bool = typer.Option(
        False, "--fail-on-alert", help="Exit 4 when an alert fires (for cron jobs)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Live accuracy on labelled feedback, confidence, and input drift against the training data.

    Examples:
      dcloop monitor --since 2026-05-01 --report reports/monitor.html
      dcloop monitor --model animals --format json
    """
    from dcloop.feedback import monitor as run_monitor
    from dcloop.feedback._mirror import mirror_monitor
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    result = run_monitor(ws, model, _since(since), report=report)
    mirror_monitor(ws, result)
    if fmt is Format.json:
        print_json(result.to_dict())
    else:
        rows = [
            [v.ref, v.predictions, v.labelled, v.accuracy, v.f1_macro, v.mean_confidence]
            for v in result.versions
        ]
        print_table(
            f"monitor {result.model}",
            ["version", "predictions", "labelled", "accuracy", "f1", "confidence"],
            rows,
        )
        for d in result.drift:
            embedding = d.embedding or {}
            print_table(
                f"drift of {d.ref}: {d.current_n} inputs vs {d.reference_n} data set images"
                f" (KS: {d.reference_split} split)",
                ["check", "value"],
                [
                    *[[f"PSI {k}", v] for k, v in d.psi.items()],
                    ["embedding KS p-value", embedding.get("ks_pvalue")],
                ],
            )
        for alert in result.alerts:
            note(f"[bold red]ALERT[/] {alert.message}")
        if not result.alerts:
            note("no alert")
        if result.report:
            note(f"report: {result.report}")
    if result.alerts and fail_on_alert:
        raise typer.Exit(4)


def retrain(
    model: str = _MODEL,
    warm_start: bool = typer.Option(False, "--warm-start", help="Start from the champion run's weights."),
    since: str = typer.Option(
        None, "--since", help="Only feedback on predictions at or after this ISO date/time."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Fold labelled feedback into a new data set version, train a challenger, gate it, promote it.

    Exits 0 when promoted and 3 when the gate refuses. Example: dcloop retrain --warm-start
    """
    from dcloop.deploy import mirror_registry
    from dcloop.deploy._gate import EVIDENCE_COLUMNS, evidence_rows
    from dcloop.feedback import retrain as run_retrain
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    result = run_retrain(ws, model, warm_start=warm_start, since=_since(since))
    mirror_registry(ws, result.model)  # the challenger version, and the champion alias if it moved
    if fmt is Format.json:
        print_json(result.to_dict())
    else:
        print_mapping(
            f"retrain {result.model}",
            {
                "champion before": result.champion,
                "challenger": result.challenger,
                "decision": "promoted" if result.promoted else "refused",
                "data set": f"{result.dataset[:12]} (parent {result.base_dataset[:12]})",
                "feedback added": f"{result.added} of {result.offered} ({result.conflicts} conflicts excluded)",
                "challenger run": result.run_id,
                "test accuracy": result.test_metrics.get("accuracy"),
            },
        )
        print_table("gate: accuracy %", EVIDENCE_COLUMNS, evidence_rows(result.gate))
        for reason in result.reasons:
            note(f"[bold red]refused:[/] {reason}")
    if not result.promoted:
        raise typer.Exit(3)


def loop(
    ctx: typer.Context,
    resume: bool = typer.Option(
        False, "--resume", help="Finish the newest unfinished turn, skipping its finished steps."
    ),
    until: str = typer.Option(None, "--until", help="Pause the turn after this step (resume with --resume)."),
    watch: bool = typer.Option(
        False, "--watch", help="Run the controller: start turns when loop.triggers fire, until stopped."
    ),
    request: str = typer.Option(None, "--request", help="Ask the controller for a turn, giving a reason."),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Run each stage as a Ray task with its cluster.stages request (RAY_ADDRESS, cluster.address).",
    ),
    fmt: Format = _FORMAT,
) -> None:
    """One turn: prepare, train, optimize, register, gate, deploy, feedback, monitor, retrain.

    Examples: dcloop loop
              dcloop loop --until register && dcloop loop --resume
              dcloop loop --cluster        (each stage a Ray task; the table shows the node per step)
              dcloop loop --watch          (the controller; dcloop loop history shows its decisions)
              dcloop loop --request "labels from the night shift"
    """
    if ctx.invoked_subcommand is not None:
        return
    if request is not None or watch:
        if request is not None:
            _controller.request(request)
        if watch:
            _controller.watch_loop(fmt)
        return
    from dcloop.loop._lease import turn_lease
    from dcloop.workspace import open_workspace as _open

    ctx.with_resource(turn_lease(_open()))  # no controller starts a turn of this model meanwhile
    from dcloop.deploy import mirror_registry
    from dcloop.loop import run_loop
    from dcloop.workspace import open_workspace

    printer = None if fmt is Format.json else _print_step
    ws = open_workspace()
    if cluster:
        from dcloop.cluster import loop_on_cluster

        turn = loop_on_cluster(ws, resume, stop_after=until, on_step=printer)
    else:
        turn = run_loop(ws, resume=resume, stop_after=until, on_step=printer)
    model = turn.outputs.get("model")
    if isinstance(model, str):  # the turn registered (and maybe promoted) versions of it
        mirror_registry(ws, model)
    if fmt is Format.json:
        print_json(turn.to_dict())
        return
    rows = [
        [s.name, s.status + (" (earlier)" if s.reused else ""), round(s.wall_s, 1), s.brief()]
        for s in turn.steps
    ]
    columns = ["step", "status", "seconds", "outputs"]
    if any(s.placement for s in turn.steps):  # ran on a cluster: which node, and its CPU seconds there
        columns[3:3] = ["node", "cpu s"]
        for row, s in zip(rows, turn.steps, strict=True):
            row[3:3] = _placement_cells(s.placement)
    print_table(f"loop turn {turn.number}: {turn.status}", columns, rows)
    if turn.report:
        note(f"report: {turn.report}")


def demo(
    directory: Path = typer.Argument(
        Path("demo-workspace"), help="Folder of the demo workspace (recreated)."
    ),
    fast: bool = typer.Option(
        False, "--fast", help="Image: three classes, four epochs (about a minute); text: text-tiny."
    ),
    task: str = typer.Option("image", "--task", help="image (Animal-MNIST) or text (Debian's fortunes)."),
    shift: str = typer.Option(
        None, "--shift", help="image: negative (default) or rotate; text: banner (default) or typos."
    ),
    source: str = typer.Option(
        None, "--source", help="Text: another source (a table with text and label columns, or a folder)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Close the loop on real data: a champion meets shifted traffic, is retrained on feedback, replaced.

    Example: dcloop demo demo-workspace; dcloop demo demo-workspace/text --task text
    """
    from dcloop._demo_report import summary_rows
    from dcloop.demo import run_demo

    if fmt is not Format.json:
        note(
            f"demo in {directory}: import, prepare, train, optimize, register, serve, feedback, monitor, retrain"
        )
    result = run_demo(
        directory,
        fast=fast,
        task=task,
        shift=shift,
        source=source,
        on_step=None if fmt is Format.json else _print_step,
    )
    if fmt is Format.json:
        print_json(result.to_dict())
        return
    counts = result.dataset["counts"]
    print_table(
        f"data set {result.dataset['name']} ({result.dataset['version'][:12]})",
        ["class", *counts, "total"],
        [
            [c, *(counts[s][c] for s in counts), sum(counts[s][c] for s in counts)]
            for c in result.dataset["classes"]
        ],
    )
    print_table(f"closing the loop (shift: {result.shift})", ["figure", "value"], summary_rows(result))
    for alert in result.alerts:
        note(f"[bold red]ALERT[/] {alert}")
    for reason in result.gate_reasons:
        note(f"[bold red]gate:[/] {reason}")
    print_mapping("reports", {name: Path(path) for name, path in result.reports.items()})


def _placement_cells(placement: dict[str, Any] | None) -> list[Any]:
    if not placement:
        return ["", ""]
    return [f"{placement['address']} ({placement['node_id'][:8]})", round(placement["cost"]["cpu_s"], 1)]


def _print_step(step: Any) -> None:
    done = "done earlier" if step.reused else f"{step.wall_s:.1f} s"
    where = f" on {step.placement['address']}" if step.placement else ""
    note(f"  {step.name:<9} {step.status} ({done}{where}) {step.brief()}")


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
    app.command("retrain")(retrain)
    loop_app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})
    loop_app.callback(invoke_without_command=True)(loop)
    loop_app.command("history")(_controller.history)
    app.add_typer(loop_app, name="loop")
    app.command("demo")(demo)
