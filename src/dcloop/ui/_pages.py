"""The Loop, Data, Runs and Models pages: each a function from a Workspace (and the query) to HTML."""

from __future__ import annotations

from typing import Any

from dcloop.store import runs as store_runs
from dcloop.store import variants as store_variants
from dcloop.ui import _queries as q
from dcloop.ui import _svg as svg
from dcloop.ui._layout import action_form, figures, fmt, link, pct, section, table
from dcloop.workspace import Workspace

STEP_STATES = {"finished": "done", "skipped": "skipped"}


def _stages(last: Any) -> list[tuple[str, str]]:
    from dcloop.loop import STEPS

    done = {s.step: STEP_STATES.get(s.status, s.status) for s in last.steps} if last else {}
    failed = last is not None and last.status == "failed"
    stages, blocked = [], False
    for step in STEPS:
        state = done.get(step)
        if state is None:
            state = (
                "pending"
                if not last
                else ("failed" if failed and not blocked else last.status if not blocked else "pending")
            )
            blocked = True
        stages.append((step, state))
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


def _cost(run: store_runs.RunRecord) -> dict[str, Any]:
    cost = run.metrics.get("cost") or {}
    return {
        k: cost.get(k)
        for k in ("wall_s", "cpu_s", "peak_rss_mb", "energy_kwh", "co2_kg", "cost_usd", "energy_source")
    }


def runs_page(ws: Workspace, kind: str | None, status: str | None, model: str | None) -> str:
    found = q.run_list(ws, kind, status, model, limit=100)
    rows = []
    for r in found:
        cost = _cost(r)
        box = f'<input type="checkbox" name="ids" value="{r.id}" aria-label="compare {r.id[:8]}">'
        rows.append(
            [
                box,
                link(f"/runs/{r.id}", r.id[:12]),
                r.kind,
                r.model,
                r.status,
                r.created_at,
                pct(r.metrics.get("accuracy")),
                pct(r.metrics.get("f1_macro")),
                cost["wall_s"],
                cost["energy_kwh"],
                cost["co2_kg"],
                cost["cost_usd"],
            ]
        )
    filters = (
        '<form method="get" action="/runs" class="filters">'
        f'<label>kind <input name="kind" value="{kind or ""}"></label>'
        f'<label>status <input name="status" value="{status or ""}"></label>'
        f'<label>model <input name="model" value="{model or ""}"></label><button>filter</button></form>'
    )
    cols = [
        "",
        "run",
        "kind",
        "model",
        "status",
        "created",
        "accuracy",
        "F1 macro",
        "wall s",
        "kWh",
        "CO2 kg",
        "USD",
    ]
    compare = f'<form method="get" action="/runs/compare">{table(cols, rows, key="runs", raw={0, 1})}<button>compare selected</button></form>'
    head = figures(
        [
            ("runs", "runs shown", len(found)),
            ("finished", "finished", sum(r.status == "finished" for r in found)),
        ]
    )
    return head + filters + section("Runs", compare)


def _curves(
    epochs: list[store_runs.EpochRecord], keys: list[str]
) -> list[tuple[str, list[tuple[float, float]]]]:
    return [
        (k, [(e.epoch, float(e.metrics[k])) for e in epochs if isinstance(e.metrics.get(k), int | float)])
        for k in keys
    ]


def run_page(ws: Workspace, ref: str) -> str:
    d = q.run_detail(ws, ref)
    run, m, cost = d["run"], d["run"].metrics, _cost(d["run"])
    head = figures(
        [
            ("accuracy", "test accuracy", pct(m.get("accuracy"))),
            ("f1_macro", "F1 macro", pct(m.get("f1_macro"))),
            ("wall_s", "wall time (s)", cost["wall_s"]),
            ("energy_kwh", "energy (kWh)", cost["energy_kwh"]),
            ("co2_kg", "CO2 (kg)", cost["co2_kg"]),
            ("cost_usd", "cost (USD)", cost["cost_usd"]),
        ]
    )
    keys = sorted({k for e in d["epochs"] for k, v in e.metrics.items() if isinstance(v, int | float)})
    losses = [k for k in keys if "loss" in k]
    scores = [k for k in keys if "acc" in k or "f1" in k]
    parts = [
        section(
            "Curves",
            svg.line_chart(_curves(d["epochs"], losses), "epoch", "loss", title="loss per epoch"),
            svg.line_chart(_curves(d["epochs"], scores), "epoch", "score", title="scores per epoch"),
        )
    ]
    classes = m.get("classes") or []
    if m.get("confusion_matrix"):
        parts.append(
            section(
                "Confusion matrix (test split)",
                svg.heatmap(
                    m["confusion_matrix"],
                    classes,
                    title="confusion matrix",
                    x_label="predicted class",
                    y_label="true class",
                ),
            )
        )
    per_class = [
        [c, pct(v["precision"]), pct(v["recall"]), pct(v["f1"]), v["support"]]
        for c, v in (m.get("per_class") or {}).items()
    ]
    parts.append(
        section(
            "Per class", table(["class", "precision", "recall", "F1", "support"], per_class, key="per_class")
        )
    )
    parts.append(section("Cost", table(["measure", "value"], [[k, v] for k, v in cost.items()], key="cost")))
    lineage = [
        ["data set version", link(f"/data?version={run.dataset_id[:12]}", run.dataset_id[:12])],
        ["parent run", fmt(run.parent_run_id)],
        ["seed", fmt(run.lineage.get("seed"))],
        ["code", fmt(run.lineage.get("code_version") or run.lineage.get("git"))],
    ]
    parts.append(section("Lineage", table(["of", "value"], lineage, raw={1})))
    parts.append(section("Variants", _variants_table(d["variants"])))
    return head + "".join(parts)


def compare_page(ws: Workspace, refs: list[str]) -> str:
    found = [q.run_detail(ws, r) for r in refs]
    keys = [
        "model",
        "kind",
        "status",
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "epochs_run",
    ]
    rows = []
    for key in keys:
        values = [
            getattr(d["run"], key, None) if key in {"model", "kind", "status"} else d["run"].metrics.get(key)
            for d in found
        ]
        rows.append([key, *(pct(v) if isinstance(v, float) and key != "epochs_run" else v for v in values)])
    for key in ("wall_s", "energy_kwh", "co2_kg", "cost_usd"):
        rows.append([key, *(_cost(d["run"])[key] for d in found)])
    curves = [
        (
            d["run"].id[:8],
            [
                (e.epoch, float(e.metrics[k]))
                for e in d["epochs"]
                for k in ("val_accuracy",)
                if isinstance(e.metrics.get(k), int | float)
            ],
        )
        for d in found
    ]
    head = figures([("compared", "runs compared", len(found))])
    return (
        head
        + section("Side by side", table(["", *(d["run"].id[:12] for d in found)], rows, key="compare"))
        + section(
            "Validation accuracy",
            svg.line_chart(curves, "epoch", "validation accuracy", title="validation accuracy per epoch"),
        )
    )


def _variants_table(found: list[store_variants.VariantRecord]) -> str:
    rows = [
        [
            v.short_id,
            v.method,
            v.run_id[:12],
            pct(v.metrics.get("accuracy")),
            v.metrics.get("latency_p50_ms"),
            (v.metrics.get("size_bytes") or 0) / 1e6,
        ]
        for v in found
    ]
    return table(["variant", "method", "run", "accuracy", "latency ms", "size MB"], rows, key="variants")


def models_page(ws: Workspace, writable: bool) -> str:
    states = q.models(ws)
    scores = q.version_scores(ws)
    head = figures(
        [
            ("models", "models", len(states)),
            ("versions", "model versions", sum(len(m.versions) for m in states)),
            ("champion", "champion", next((m.champion.ref for m in states if m.champion), None)),
        ]
    )
    parts = []
    for m in states:
        rows = []
        for v in reversed(m.versions):
            tags = ", ".join(a for a, n in m.aliases.items() if n == v.version)
            labelled, acc, f1 = scores.get(v.ref, (0, None, None))
            rows.append(
                [
                    v.ref,
                    tags,
                    v.created_at,
                    v.method,
                    pct(v.metrics.get("accuracy")),
                    labelled,
                    pct(acc),
                    pct(f1),
                    v.sha256[:12],
                ]
            )
        moves = [
            [mv.at, mv.alias, mv.from_version, mv.to_version, mv.kind, mv.actor, mv.reason]
            for mv in reversed(m.moves)
        ]
        actions = action_form(
            "/actions/promote",
            "promote",
            [
                ("model", "model", m.name),
                ("version", "version (empty: challenger)", ""),
                ("reason", "reason", ""),
            ],
            f"Promote a version of {m.name} to champion (through the gate)?",
            writable=writable,
        )
        actions += action_form(
            "/actions/rollback",
            "roll back champion",
            [("model", "model", m.name), ("reason", "reason", "")],
            f"Roll the champion of {m.name} back to its previous version?",
            writable=writable,
        )
        parts.append(
            section(
                f"Model {m.name}",
                table(
                    [
                        "version",
                        "aliases",
                        "created",
                        "method",
                        "test accuracy",
                        "labelled",
                        "live accuracy",
                        "live F1",
                        "sha256",
                    ],
                    rows,
                    key=f"versions-{m.name}",
                ),
                "<h3>Alias history and the gate's evidence</h3>",
                table(
                    ["at", "alias", "from", "to", "kind", "actor", "reason / evidence"],
                    moves,
                    key=f"moves-{m.name}",
                ),
                actions,
            )
        )
    parts.append(section("Gate decisions in loop turns", _gate_evidence(ws)))
    found = store_variants.list_variants(ws.store)
    points = [
        (
            float(v.metrics.get("latency_p50_ms") or 0.0),
            float(v.metrics.get("accuracy") or 0.0),
            f"{v.method} {v.short_id[:6]}",
        )
        for v in found
        if v.metrics.get("accuracy") is not None
    ]
    parts.append(
        section(
            "Optimized variants",
            svg.scatter(points, "latency per image (ms)", "test accuracy", title="accuracy against latency"),
            _variants_table(found),
        )
    )
    return head + "".join(parts)


def _gate_evidence(ws: Workspace) -> str:
    from dcloop.store import turns

    rows = []
    for t in reversed(turns.list_turns(ws.store)[-20:]):
        gate = next((s for s in t.steps if s.step == "gate"), None)
        if gate is not None:
            out = gate.outputs
            reasons = "; ".join(out.get("gate_reasons") or []) or out.get("gate_note")
            rows.append(
                [
                    t.number,
                    t.outputs().get("registered"),
                    out.get("champion"),
                    out.get("gate_passed"),
                    reasons,
                ]
            )
    return table(["turn", "challenger", "champion", "passed", "evidence"], rows, key="gate")
