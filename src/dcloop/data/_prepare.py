"""The data stage: import a source, prepare it into an immutable version, load versions back.

``import_source`` records where the data lives and prepares it at once; ``prepare_dataset`` reads a
recorded source again with the workspace's current ``data`` config. Preparing runs top to bottom:
read and convert (the source) -> clean -> split -> write the version -> record it in the store.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.config import DataConfig
from dcloop.data import (  # noqa: F401  (importing them registers the source kinds)
    _folder,
    _fortunes,
    _sources,
    _text_sources,
    _text_tables,
)
from dcloop.data._clean import clean
from dcloop.data._folder import shown
from dcloop.data._intake import BUILTIN, SOURCES, TEXT, Intake
from dcloop.data._persist import read_version, write_version
from dcloop.data._split import stratified_split
from dcloop.data._text_clean import clean_texts
from dcloop.data._version import PreparedDataset
from dcloop.errors import DataError, NotFoundError, suggest
from dcloop.store import DatasetRecord
from dcloop.store import datasets as store_data
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


def list_sources() -> list[str]:
    """Names of the source kinds `dcloop data import` understands."""
    return SOURCES.names()


def describe_sources() -> dict[str, str]:
    """Source kind -> the first line of its description."""
    return {name: (SOURCES.get(name).__doc__ or "").strip().splitlines()[0] for name in SOURCES.names()}


def import_source(
    workspace: Workspace,
    source: str,
    *,
    name: str | None = None,
    classes: Sequence[str | int] | str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> DatasetRecord:
    """Record ``source`` (a built-in name like "animal-mnist" or "fortunes", or a path) and prepare a
    version of it.

    ``classes`` keeps only those classes (names or indices, or one comma-separated string).
    ``text_column`` and ``label_column`` name the fields of a tabular text source (default: the
    workspace's ``data.text_column`` and ``data.label_column``); they are recorded with the source.
    """
    kind, location = resolve_source(source)
    wanted = _class_list(classes)
    name = name or default_name(kind, location, wanted)
    if not re.fullmatch(r"[\w.-]{1,200}", name):
        raise DataError(f"Data set name {name!r} must be 1-200 letters, digits, '_', '-' or '.'.")
    options = None
    if kind in TEXT:
        cfg = workspace.config.data
        options = {
            "text_column": text_column or cfg.text_column,
            "label_column": label_column or cfg.label_column,
        }
    elif text_column or label_column:
        raise DataError(
            f"--text-column and --label-column apply to text sources; {source} is a {kind} source."
        )
    return _prepare(workspace, name, kind, location, wanted, options)


def prepare_dataset(workspace: Workspace, name: str | None = None) -> DatasetRecord:
    """Prepare the recorded source ``name`` (default: the latest imported) with the current config."""
    recorded = store_data.get_source(workspace.store, name)
    location = Path(recorded.location) if recorded.location is not None else None
    return _prepare(workspace, recorded.name, recorded.kind, location, recorded.classes, recorded.options)


def load_dataset(workspace: Workspace, ref: str | None = None) -> PreparedDataset:
    """A prepared version by id, id prefix or name (None: the newest); ``x`` is memory-mapped."""
    record = get_dataset(workspace, ref)
    return read_version(workspace.datasets_dir / record.id, record)


def get_dataset(workspace: Workspace, ref: str | None = None) -> DatasetRecord:
    """The record of a version by id, unique id prefix or name (None: the newest)."""
    if ref is not None:
        try:
            return store_data.get_dataset(workspace.store, ref)
        except NotFoundError:
            # a source whose content matched a version stored under another name
            recorded = store_data.find_source(workspace.store, ref)
            if recorded is None or recorded.version_id is None:
                raise
            return store_data.get_dataset(workspace.store, recorded.version_id)
    versions = store_data.list_datasets(workspace.store)
    if not versions:
        raise NotFoundError("No data set version yet. Run `dcloop data import animal-mnist` first.")
    return versions[-1]


def list_datasets(workspace: Workspace) -> list[DatasetRecord]:
    """Every prepared version, oldest first."""
    return store_data.list_datasets(workspace.store)


def _prepare(
    workspace: Workspace,
    name: str,
    kind: str,
    location: Path | None,
    classes: list[str] | None,
    options: dict[str, str] | None = None,
) -> DatasetRecord:
    cfg: DataConfig = workspace.config.data
    intake = _read(kind, location, classes, cfg, options)
    keep, report = _clean(intake, cfg)
    x, y, test = intake.x[keep], intake.y[keep], intake.test[keep]
    _require_usable(y, intake.classes, report["counts"], location or kind, intake.modality)
    splits = stratified_split(y, cfg.val_fraction, cfg.test_fraction, cfg.seed, test)
    provenance = {
        "kind": kind,
        "location": str(location) if location is not None else None,
        "classes": classes,
        **(options or {}),
        **intake.provenance,
        "config": cfg.model_dump(mode="json"),
    }
    record = write_version(workspace.datasets_dir, name, x, y, intake.classes, splits, provenance, report)
    stored = store_data.record_version(
        workspace.store, record, kind, provenance["location"], classes, options
    )
    log.info("prepared %s (%s): %d examples", stored.short_id, name, len(y))
    return stored


def _read(
    kind: str,
    location: Path | None,
    classes: list[str] | None,
    cfg: DataConfig,
    options: dict[str, str] | None,
) -> Intake:
    """Call the source's loader with what its modality needs: image settings, or text column names."""
    loader = SOURCES.get(kind)
    try:
        if kind in TEXT:
            columns = options or {"text_column": cfg.text_column, "label_column": cfg.label_column}
            return loader(location, classes, columns["text_column"], columns["label_column"])
        return loader(location, classes, cfg.image_size, cfg.color, cfg.max_image_pixels)
    except OSError as exc:  # a file vanished or became unreadable while reading
        raise DataError(f"Cannot read {exc.filename or location}: {exc.strerror or exc}.") from None


def _clean(intake: Intake, cfg: DataConfig) -> tuple[np.ndarray, dict[str, Any]]:
    if intake.modality == "text":
        keep, report = clean_texts(
            intake.x,
            intake.y,
            intake.names,
            intake.quarantined,
            max_chars=cfg.max_chars,
            dedupe=cfg.dedupe,
            prefer=intake.test,
        )
    else:
        keep, report = clean(
            intake.x,
            intake.y,
            intake.names,
            intake.quarantined,
            drop_blank=cfg.drop_blank,
            dedupe=cfg.dedupe,
            prefer=intake.test,
        )
    return keep, report | intake.notes


def _require_usable(
    y: np.ndarray, classes: list[str], counts: dict[str, int], origin: object, modality: str
) -> None:
    present = {classes[i] for i in set(y.tolist())}
    if len(present) < 2:
        dropped = ", ".join(f"{rule} {n}" for rule, n in counts.items() if n)
        raise DataError(
            f"{origin} leaves {len(y)} usable {'texts' if modality == 'text' else 'images'} in {len(present)} "
            "class(es) after cleaning; at least "
            f"2 classes are needed (dropped: {dropped or 'nothing'})."
        )


def resolve_source(source: str) -> tuple[str, Path | None]:
    """(kind, location) of a source given as a built-in name or a path."""
    path = Path(source).expanduser()
    if source in BUILTIN and not path.exists():
        return source, None
    if source in SOURCES and not path.exists():
        raise DataError(f"Source kind {source!r} needs a path: dcloop data import PATH.")
    if not path.exists():
        if path.is_symlink():
            raise DataError(f"Source path {source} is a broken symlink.")
        if os.sep in source or path.suffix:
            raise DataError(
                f"Source path {source} does not exist. Import a folder of <class>/<image> files, an .npz "
                f"or IDX file, or a built-in source: dcloop data import {sorted(BUILTIN)[0]}"
            )
        raise DataError(
            f"Unknown data source {source!r}: not a built-in source ({', '.join(sorted(BUILTIN))}) "
            f"nor an existing path.{suggest(source, BUILTIN)}"
        )
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise DataError(f"Cannot read source path {source}: permission denied.")
    resolved = path.resolve()
    if shown(str(resolved)) != str(resolved):  # the store records the path as text
        raise DataError(
            f"Source path {shown(str(resolved))} must be valid UTF-8 to be recorded; rename it "
            "(the files inside may have any names)."
        )
    return _kind_of(path), resolved


def _kind_of(path: Path) -> str:
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        if not entries:
            raise DataError(f"Source folder {path} is empty. Expected {path}/<class>/<image or .txt files>.")
        if any(_sources.is_idx(p) and p.is_file() for p in entries):
            return "idx"
        return "text-folder" if _text_sources.is_text_folder(path) else "folder"
    if path.suffix.lower() == ".npz":
        return "npz"
    if _sources.is_idx(path):
        return "idx"
    table = _text_tables.table_kind(path)
    if table is not None:
        return table
    raise DataError(
        f"Source {path} is not a kind dcloop reads: expected a folder of class sub-folders (images or "
        ".txt files), an .npz with x and y, an IDX images file (name containing idx3), or a text table "
        "(.csv, .tsv, .jsonl, .parquet)."
    )


def default_name(kind: str, location: Path | None, classes: list[str] | None) -> str:
    """A data set name derived from the source: "animal-mnist-cat-dog", "pets", "mnist"."""
    if location is None:
        base = kind
    else:
        base = re.sub(
            r"(\.gz|\.npz|\.csv|\.tsv|\.jsonl|\.ndjson|\.parquet|[-_.]?(images[-_.]?)?idx\d[-_.]?ubyte)+$",
            "",
            location.name,
            flags=re.I,
        )
        if base.lower() in {"train", "data", "images", ""}:
            base = f"{location.parent.name}-{base}".strip("-")
    if classes:
        base += "-" + "-".join(classes)
    return re.sub(r"[^\w.-]+", "-", base).strip("-.")[:200] or kind


def _class_list(classes: Sequence[str | int] | str | None) -> list[str] | None:
    if classes is None:
        return None
    items = classes.split(",") if isinstance(classes, str) else [str(c) for c in classes]
    items = [c.strip() for c in items if c.strip()]
    return items or None
