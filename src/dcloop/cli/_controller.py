"""`dcloop loop --watch`, `dcloop loop --request`, `dcloop loop history`: the loop controller's commands."""

from __future__ import annotations

from typing import Any

import typer

from dcloop.cli._output import Format, note, print_json, print_table

_COLUMNS = ["at", "trigger", "outcome", "reason", "figures"]


def _row(d: Any) -> list[Any]:
    figures = ", ".join(f"{k}={v}" for k, v in d.figures.items() if k != "reason")
    return [d.at, d.trigger, d.outcome, d.reason, figures]


def watch_loop(fmt: Format) -> None:
    """Run the controller until SIGTERM or Ctrl-C, printing each decision."""
    from dcloop.loop import watch
    from dcloop.loop._lease import lease_name
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    policy, triggers = ws.config.loop.policy, ws.config.loop.triggers
    on = ", ".join(f"{k}={v}" for k, v in triggers.model_dump().items() if v) or "manual requests only"
    note(f"watching {lease_name(ws)} every {policy.poll_s:g} s ({on}); stop with Ctrl-C or SIGTERM")

    def show(decision: Any) -> None:
        if fmt is Format.json:
            print_json(decision.__dict__)
        else:
            note(f"{decision.at:%Y-%m-%d %H:%M:%S} {decision.trigger} {decision.outcome}: {decision.reason}")

    watch(ws, on_decision=show)


def request(reason: str) -> None:
    from dcloop.loop import request_turn
    from dcloop.workspace import open_workspace

    asked = request_turn(open_workspace(), reason)
    note(f"turn of {asked.model} requested ({asked.reason}); a running `dcloop loop --watch` starts it")


def history(
    limit: int = typer.Option(50, "--limit", help="Show the newest this many decisions."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """The loop controller's decisions: what fired, what each turn did, why a trigger started nothing.

    A decision holds its trigger's figures; one held back says why (cooldown, budget, quiet hours, lease).

    Example: dcloop loop history --limit 20
    """
    from dcloop.loop._controller import history as decisions
    from dcloop.workspace import open_workspace

    rows = decisions(open_workspace(), limit=limit)
    if fmt is Format.json:
        print_json([d.__dict__ for d in rows])
    elif rows:
        print_table(f"loop decisions ({len(rows)})", _COLUMNS, [_row(d) for d in rows])
    else:
        note("no decisions yet: start the controller with `dcloop loop --watch`")
