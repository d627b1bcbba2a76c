"""The model registry: immutable model versions (ONNX, content-addressed) and movable aliases.

A version is ``name@N``; ``champion`` (served) and ``challenger`` (candidate) are aliases whose
every move is appended to a history, so ``rollback`` can walk it back.
"""

from __future__ import annotations

import getpass
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcloop.atomic import copy_file, write_text
from dcloop.deploy._runtime import inspect_onnx, sha256_file
from dcloop.deploy._sources import resolve_source
from dcloop.deploy._text import (
    SPEC_FILE,
    TOKENIZER_FILE,
    inspect_text_onnx,
    load_spec,
    read_spec,
    registered_spec,
)
from dcloop.errors import ConfigError, DcloopError, NotFoundError, unknown_name
from dcloop.store import registry as q
from dcloop.store.registry import AliasMove, ModelVersion
from dcloop.workspace import Workspace

ALIASES = ("champion", "challenger")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def register_model_version(
    ws: Workspace,
    source: str | Path,
    *,
    name: str | None = None,
    alias: str | None = None,
    classes: list[str] | None = None,
    dataset_id: str | None = None,
    actor: str | None = None,
) -> ModelVersion:
    """Register a run (exported to ONNX), an optimized variant, or an ONNX file as ``name@N``.

    ``classes`` and ``dataset_id`` are needed only for a bare ONNX file. ``alias`` (e.g.
    "challenger") is pointed at the new version in the same transaction.
    """
    if alias is not None and alias not in ALIASES:
        raise ConfigError(f"--alias must be one of {', '.join(ALIASES)}. Got {alias!r}.")
    meta = resolve_source(ws, str(source), classes, dataset_id)
    exported = meta.pop("exported", None)
    try:
        return _register(ws, meta, name, alias, actor)
    finally:
        if exported is not None:  # the temporary export of a run, now copied into the registry
            shutil.rmtree(exported, ignore_errors=True)


def _register(
    ws: Workspace, meta: dict[str, Any], name: str | None, alias: str | None, actor: str | None
) -> ModelVersion:
    name = name or meta.pop("default_name")
    meta.pop("default_name", None)
    if not _NAME.match(name):
        raise ConfigError(f"Model name must be letters, digits, '.', '_' or '-' (max 100). Got {name!r}.")
    onnx_path = Path(meta.pop("onnx_path"))
    text = read_spec(onnx_path.parent)  # a text model carries its tokenizer and model.json beside it
    if text is None:
        input_shape, num_outputs = inspect_onnx(onnx_path)
    else:
        # refuses a broken tokenizer now, not when a server loads it
        tokenizer = load_spec(text["tokenizer_path"], text["max_length"], pad_id=text["pad_id"])
        input_shape, num_outputs = [], inspect_text_onnx(onnx_path)
    if num_outputs != len(meta["classes"]):
        raise ConfigError(
            f"{onnx_path} outputs {num_outputs} logits but {len(meta['classes'])} classes were given."
        )

    def build(version: int) -> ModelVersion:
        target = ws.artifacts_dir / "models" / name / str(version) / "model.onnx"
        if text is not None:  # the tokenizer and spec first: a version's model.onnx means a whole folder
            copy_file(text["tokenizer_path"], target.parent / TOKENIZER_FILE)
            write_text(
                target.parent / SPEC_FILE,
                registered_spec(text["max_length"], tokenizer.pad_id, tokenizer.tokenizer_sha256),
            )
        copy_file(onnx_path, target)
        return ModelVersion(
            id=uuid.uuid4().hex,
            name=name,
            version=version,
            created_at=datetime.now(UTC),
            path=str(target),
            sha256=sha256_file(target),
            input_shape=input_shape,
            **meta,
        )

    return q.register_version(ws.store, name, build, alias=alias, actor=actor or _actor())


def get_model_version(ws: Workspace, ref: str) -> ModelVersion:
    """``name@alias``, ``name@3``, or ``name`` (its champion, else its newest version)."""
    name, _, selector = ref.partition("@")
    names = q.model_names(ws.store)
    if name not in names:
        from dcloop.errors import unknown_name

        raise unknown_name("model", name, names)
    pointers = q.aliases(ws.store, name)
    if not selector:
        version = pointers.get("champion") or q.latest_number(ws.store, name)
    elif selector.isascii() and selector.isdigit() and len(selector) <= 10 and int(selector) < 2**31:
        # ASCII digits only ("²".isdigit() is true, int("²") raises) and within a 32-bit column
        version = int(selector)
    elif selector in pointers:
        version = pointers[selector]
    else:
        raise NotFoundError(
            f"Model {name!r} has no alias {selector!r}. Aliases set: {', '.join(pointers) or 'none'}."
        )
    record = q.get_version(ws.store, name, version)
    if record is None:
        raise NotFoundError(f"Model {name!r} has no version {version}. See `dcloop models versions {name}`.")
    return record


def list_model_versions(ws: Workspace, name: str) -> list[tuple[ModelVersion, list[str]]]:
    """Every version of ``name``, oldest first, with the aliases pointing at it."""
    get_model_version(ws, name)  # uniform error for an unknown name
    pointers = q.aliases(ws.store, name)
    versions = q.list_versions(ws.store, name)
    return [(v, sorted(a for a, n in pointers.items() if n == v.version)) for v in versions]


def model_aliases(ws: Workspace, name: str) -> dict[str, int]:
    return q.aliases(ws.store, name)


def set_alias(
    ws: Workspace,
    name: str,
    alias: str,
    version: int | None,
    *,
    kind: str = "set",
    reason: str,
    actor: str | None = None,
) -> AliasMove:
    """Point ``alias`` at ``name@version`` (None removes it), recording the move. No gate: see ``promote``."""
    if alias not in ALIASES:
        raise ConfigError(f"Alias must be one of {', '.join(ALIASES)}. Got {alias!r}.")
    if version is not None:
        get_model_version(ws, f"{name}@{version}")
    return q.move_alias(ws.store, name, alias, version, kind=kind, reason=reason, actor=actor or _actor())


def alias_history(ws: Workspace, name: str, alias: str | None = None) -> list[AliasMove]:
    """Every alias move of ``name`` (or of one alias), oldest first."""
    get_model_version(ws, name)
    return q.alias_moves(ws.store, name, alias)


def rollback(ws: Workspace, name: str, *, reason: str | None = None, actor: str | None = None) -> AliasMove:
    """Point ``champion`` back at the version it held before its latest promotion."""
    stack: list[int] = []
    for move in alias_history(ws, name, "champion"):
        if move.kind == "rollback":
            stack.pop()
        elif move.to_version is not None:
            stack.append(move.to_version)
    if len(stack) < 2:
        raise RollbackError(f"Model {name!r} has no earlier champion to roll back to.")
    return set_alias(
        ws,
        name,
        "champion",
        stack[-2],
        kind="rollback",
        reason=reason or f"rollback from {name}@{stack[-1]}",
        actor=actor,
    )


class RollbackError(DcloopError):
    """There is nothing to roll back to."""


def resolve_model_name(ws: Workspace, model: str | None = None) -> str:
    """The registered model a command means: ``model`` (NAME or NAME@...), else `loop.model`, else
    `serve.model`, else the only registered name; a one-line error when that leaves a choice."""
    names = q.model_names(ws.store)
    wanted = model or ws.config.loop.model or ws.config.serve.model
    if wanted:
        name = wanted.partition("@")[0]
        if name not in names:
            raise unknown_name("model", name, names)
        return name
    if not names:
        raise NotFoundError(
            "No model is registered in this workspace yet. Register a trained run or an optimized "
            "variant first: dcloop models register <run or variant> --name NAME --alias champion"
        )
    if len(names) != 1:
        raise ConfigError(f"Say which model with --model (models: {', '.join(names)}).")
    return names[0]
