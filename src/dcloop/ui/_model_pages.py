"""The Models page: the registry, alias history with the gate's evidence, optimized variants, actions."""

from __future__ import annotations

from dcloop.store import variants as store_variants
from dcloop.ui import _queries as q
from dcloop.ui import _svg as svg
from dcloop.ui._layout import action_form, figures, pct, section, table
from dcloop.workspace import Workspace


def variants_table(found: list[store_variants.VariantRecord]) -> str:
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
            variants_table(found),
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
