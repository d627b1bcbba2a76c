"""``promote``: move an alias to a version, through the gate when the alias is ``champion``."""

from __future__ import annotations

from dataclasses import dataclass

from dcloop.deploy._gate import GateDecision, evaluate_gate
from dcloop.deploy._registry import get_model_version, model_aliases, set_alias
from dcloop.errors import DcloopError, NotFoundError
from dcloop.store.registry import AliasMove
from dcloop.workspace import Workspace


class GateRefused(DcloopError):
    """The challenger did not pass the promotion gate."""

    exit_code = 3

    def __init__(self, decision: GateDecision, message: str) -> None:
        super().__init__(message)
        self.decision = decision


@dataclass(frozen=True)
class Promotion:
    """The alias move made and the gate decision behind it (None when no gate applied)."""

    move: AliasMove
    decision: GateDecision | None


def promote(
    ws: Workspace,
    name: str,
    *,
    to: str = "champion",
    version: int | None = None,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> Promotion:
    """Point ``to`` at ``name@version`` (default: the challenger). A champion move must pass the gate.

    The first champion needs no gate. ``force`` overrides a refusal; the move records why.
    Raises GateRefused (one line listing every reason) when the gate fails without ``force``.
    """
    pointers = model_aliases(ws, name)
    if version is None:
        if "challenger" not in pointers:
            get_model_version(ws, name)  # unknown model -> uniform error
            raise NotFoundError(
                f"Model {name!r} has no challenger; give --version or register with --alias challenger."
            )
        version = pointers["challenger"]
    target = get_model_version(ws, f"{name}@{version}")
    current = pointers.get(to)
    decision = None
    if to == "champion" and current is not None and current != version:
        decision = evaluate_gate(ws, name, target, f"{name}@{current}")
    if decision is not None and not decision.passed and not force:
        raise GateRefused(
            decision, f"Gate refused {target.ref} over champion {name}@{current}: {decision.summary()}."
        )
    kind = "promote"
    if decision is not None and not decision.passed:
        kind, why = "force", f"forced ({reason or 'no reason given'}) over: {decision.summary()}"
    elif decision is not None:
        why = reason or decision.summary()
    elif to == "champion":
        why = reason or ("first champion" if current is None else "already champion")
    else:
        why = reason or f"set {to} (no gate)"
    move = set_alias(ws, name, to, version, kind=kind, reason=why, actor=actor)
    if to == "champion" and pointers.get("challenger") == version:
        set_alias(ws, name, "challenger", None, kind="promote", reason="promoted to champion", actor=actor)
    return Promotion(move, decision)
