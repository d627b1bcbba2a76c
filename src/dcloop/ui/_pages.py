"""The Loop and Data pages: each a function from a Workspace (and the query) to HTML."""

from __future__ import annotations

from typing import Any

from dcloop.ui import _queries as q
from dcloop.ui import _svg as svg
from dcloop.ui._layout import action_form, figures, fmt, link, section, table
from dcloop.workspace import Workspace

STEP_STATES = {"finished": "done", "skipped": "skipped"}


def _stages(last: Any) -> list[tuple[str, str]]:
    """Each step of the loop and its state in ``last``: done or skipped, then the turn's own state
    (running, paused, failed) on the first step it has not finished, pending after that."""
    from dcloop.loop import STEPS

    done = {s.step: STEP_STATES.get(s.status, s.status) for s in last.steps} if last else {}
    stages, waiting = [], last is None or last.status == "finished"
    for step in STEPS:
        if step in done:
            stages.append((step, done[step]))
            continue
        stages.append((step, "pending" if waiting else last.status))
        waiting = True
    return stages


def loop_page(ws: Workspace, writable: bool) -> str:
    o = q.loop_overview(ws)
    last, fb = o["last"], o["feedback"]
    champion = next((m.champion.ref for m in o["models"] if m.champion), None)
    challenger = next((m.challenger.ref for m in o["models"] if m.challenger), None)
    head = figures(
        [
            ("turns", "loop turns", len(o["turns"])),
            ("last_turn", "last turn", f"#{last.number} {last.status}" if last else None),
            ("champion", "champion", champion),
            ("challenger", "challenger", challenger),
            ("alerts", "alerts", len(o["alerts"])),
            ("predictions", "predictions logged", fb["predictions"]),
            ("labelled", "labelled", fb["labelled"]),
            ("held_out", "held out", fb["held_out"]),
        ]
    )
    diagram = svg.loop_diagram(_stages(last), title=f"last turn #{last.number}" if last else "no turn yet")
    model_rows = [
        [
            m.name,
            m.champion.ref if m.champion else None,
            m.challenger.ref if m.challenger else None,
            len(m.versions),
        ]
        for m in o["models"]
    ]
    alert_rows = [[d.at, d.model, d.outcome, d.reason] for d in o["alerts"]]
    timeline = [
        (t.started_at.timestamp(), ((t.finished_at or t.started_at) - t.started_at).total_seconds())
        for t in o["turns"]
    ]
    turn_rows = [
        [t.number, t.status, t.started_at, t.finished_at, ", ".join(s.step for s in t.steps), t.error]
        for t in reversed(o["turns"][-20:])
    ]
    decision_rows = [[d.at, d.model, d.trigger, d.outcome, d.reason] for d in o["decisions"]]
    return head + "".join(
        [
            section("The loop", diagram),
            section(
                "Models", table(["model", "champion", "challenger", "versions"], model_rows, key="models")
            ),
            section("Alerts", table(["at", "model", "outcome", "reason"], alert_rows, key="alerts")),
            section(
                "Timeline of turns",
                svg.line_chart(
                    [("turn wall time", timeline)],
                    "turn started (UTC)",
                    "wall time (s)",
                    title="turns",
                    time_axis=True,
                ),
                table(
                    ["turn", "status", "started", "finished", "steps done", "error"], turn_rows, key="turns"
                ),
            ),
            section(
                "Controller decisions", table(["at", "model", "trigger", "outcome", "reason"], decision_rows)
            ),
            section(
                "Feedback",
                action_form(
                    "/actions/forget",
                    "forget stored inputs",
                    [("ids", "prediction ids (space or comma separated)", "")],
                    "Delete the stored inputs of these predictions? Their aggregates are kept.",
                    writable=writable,
                ),
            ),
        ]
    )


def _split_total(counts: dict[str, dict[str, int]], split: str) -> int:
    return sum(counts.get(split, {}).values())


def data_page(ws: Workspace, version: str | None) -> str:
    o = q.data_overview(ws)
    versions = o["versions"]
    chosen = next(
        (v for v in versions if version and v.id.startswith(version)), versions[-1] if versions else None
    )
    head = figures(
        [
            ("versions", "data set versions", len(versions)),
            ("sources", "sources", len(o["sources"])),
            (
                "images",
                "images in newest",
                sum(_split_total(versions[-1].counts, s) for s in versions[-1].counts) if versions else None,
            ),
        ]
    )
    rows = [
        [
            link(f"/data?version={v.id[:12]}", v.short_id),
            v.name,
            v.created_at,
            len(v.classes),
            _split_total(v.counts, "train"),
            _split_total(v.counts, "val"),
            _split_total(v.counts, "test"),
            v.parent_id[:12] if v.parent_id else None,
        ]
        for v in reversed(versions)
    ]
    parts = [
        section(
            "Versions",
            table(
                ["version", "name", "created", "classes", "train", "val", "test", "extends"],
                rows,
                key="versions",
                raw={0},
            ),
        )
    ]
    if chosen is not None:
        splits = list(chosen.counts)
        per_class = [[c, *(chosen.counts[s].get(c, 0) for s in splits)] for c in chosen.classes]
        totals = [sum(chosen.counts[s].get(c, 0) for s in splits) for c in chosen.classes]
        parts.append(
            section(
                f"Version {chosen.short_id}: counts per split and class",
                table(["class", *splits], per_class, key="class_counts"),
                svg.bar_chart(chosen.classes, totals, "class", "images", title="images per class"),
            )
        )
        cleaning = [[k, v] for k, v in chosen.cleaning.items() if not isinstance(v, dict | list)]
        cleaning += [[k, fmt(v)] for k, v in chosen.cleaning.items() if isinstance(v, dict | list)]
        parts.append(section("Cleaning report", table(["rule", "result"], cleaning, key="cleaning")))
    parts.append(section("Lineage", _lineage(o)))
    return head + "".join(parts)


def _lineage(o: dict[str, Any]) -> str:
    sources = [(f"s:{s.name}", f"{s.name} ({s.kind})", "") for s in o["sources"]]
    versions = [(f"d:{v.id}", f"{v.short_id} {v.name}", f"/data?version={v.id[:12]}") for v in o["versions"]]
    runs = [(f"r:{r.id}", f"{r.id[:8]} {r.kind} {r.model}", f"/runs/{r.id}") for r in o["runs"][:30]]
    mvs = [(f"m:{v.id}", v.ref, "/models") for m in o["models"] for v in m.versions]
    edges = [(f"s:{s.name}", f"d:{s.version_id}") for s in o["sources"] if s.version_id]
    edges += [(f"d:{v.parent_id}", f"d:{v.id}") for v in o["versions"] if v.parent_id]
    edges += [(f"d:{r.dataset_id}", f"r:{r.id}") for r in o["runs"]]
    edges += [(f"r:{v.run_id}", f"m:{v.id}") for m in o["models"] for v in m.versions if v.run_id]
    columns = [("sources", sources), ("data set versions", versions), ("runs", runs), ("model versions", mvs)]
    return svg.graph(columns, edges, title="lineage: source, version, runs, models")
