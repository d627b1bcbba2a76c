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

import numpy as np

from dcloop.config import DataConfig
from dcloop.data import _folder, _sources  # noqa: F401  (registers the source kinds)
from dcloop.data._clean import clean
from dcloop.data._folder import shown
from dcloop.data._intake import BUILTIN, SOURCES
from dcloop.data._persist import read_version, write_version
from dcloop.data._split import stratified_split
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
) -> DatasetRecord:
    """Record ``source`` (a built-in name like "animal-mnist" or a path) and prepare a version of it.

    ``classes`` keeps only those classes (names or indices, or one comma-separated string).
    """
    kind, location = resolve_source(source)
    wanted = _class_list(classes)
    name = name or default_name(kind, location, wanted)
    if not re.fullmatch(r"[\w.-]{1,200}", name):
        raise DataError(f"Data set name {name!r} must be 1-200 letters, digits, '_', '-' or '.'.")
    return _prepare(workspace, name, kind, location, wanted)


def prepare_dataset(workspace: Workspace, name: str | None = None) -> DatasetRecord:
    """Prepare the recorded source ``name`` (default: the latest imported) with the current config."""
    recorded = store_data.get_source(workspace.store, name)
    location = Path(recorded.location) if recorded.location is not None else None
    return _prepare(workspace, recorded.name, recorded.kind, location, recorded.classes)


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
    workspace: Workspace, name: str, kind: str, location: Path | None, classes: list[str] | None
) -> DatasetRecord:
    cfg: DataConfig = workspace.config.data
    try:
        intake = SOURCES.get(kind)(location, classes, cfg.image_size, cfg.color, cfg.max_image_pixels)
    except OSError as exc:  # a file vanished or became unreadable while reading
        raise DataError(f"Cannot read {exc.filename or location}: {exc.strerror or exc}.") from None
    keep, report = clean(
        intake.x,
        intake.y,
        intake.names,
        intake.quarantined,
        drop_blank=cfg.drop_blank,
        dedupe=cfg.dedupe,
        prefer=intake.test,
    )
    x, y, test = intake.x[keep], intake.y[keep], intake.test[keep]
    _require_usable(y, intake.classes, report["counts"], location or kind)
    splits = stratified_split(y, cfg.val_fraction, cfg.test_fraction, cfg.seed, test)
    provenance = {
        "kind": kind,
        "location": str(location) if location is not None else None,
        "classes": classes,
        **intake.provenance,
        "config": cfg.model_dump(mode="json"),
    }
    record = write_version(workspace.datasets_dir, name, x, y, intake.classes, splits, provenance, report)
    stored = store_data.record_version(workspace.store, record, kind, provenance["location"], classes)
    log.info("prepared %s (%s): %d examples", stored.short_id, name, len(y))
    return stored


def _require_usable(y: np.ndarray, classes: list[str], counts: dict[str, int], origin: object) -> None:
    present = {classes[i] for i in set(y.tolist())}
    if len(present) < 2:
        dropped = ", ".join(f"{rule} {n}" for rule, n in counts.items() if n)
        raise DataError(
            f"{origin} leaves {len(y)} usable images in {len(present)} class(es) after cleaning; at least "
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
            raise DataError(f"Source folder {path} is empty. Expected {path}/<class>/<image files>.")
        return "idx" if any(_sources.is_idx(p) and p.is_file() for p in entries) else "folder"
    if path.suffix.lower() == ".npz":
        return "npz"
    if _sources.is_idx(path):
        return "idx"
    raise DataError(
        f"Source {path} is not a kind dcloop reads: expected a folder of class sub-folders, "
        "an .npz with x and y, or an IDX images file (name containing idx3)."
    )


def default_name(kind: str, location: Path | None, classes: list[str] | None) -> str:
    """A data set name derived from the source: "animal-mnist-cat-dog", "pets", "mnist"."""
    if location is None:
        base = kind
    else:
        base = re.sub(r"(\.gz|\.npz|[-_.]?(images[-_.]?)?idx\d[-_.]?ubyte)+$", "", location.name, flags=re.I)
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
