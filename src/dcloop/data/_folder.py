"""Folder sources: ``<root>/<class>/<image>``, or ``<root>/train/<class>/...`` plus ``<root>/test/...``.

Only links that stay inside the source folder are read, so importing a folder never pulls in files
from elsewhere on the machine; the others are quarantined with the reason.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcloop import progress
from dcloop.data._convert import CHANNELS, Rejected, decode_file
from dcloop.data._intake import SOURCES, Intake, require_classes, select_classes
from dcloop.errors import DataError

# Split folder -> whether it is the source's own test split; val folders join the pool that is re-split.
SPLIT_FOLDERS = {"train": False, "val": False, "valid": False, "validation": False, "test": True}


def _is_hidden(path: Path) -> bool:
    return path.name.startswith((".", "__"))  # .DS_Store, .git, __MACOSX


def _refuse(path: Path, root: Path, refused: list[tuple[str, str, str]]) -> None:
    reason = f"symlink points outside the source folder (to {path.resolve()})"
    refused.append(("symlink_outside", str(path.relative_to(root)), reason))


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _class_folders(folder: Path, root: Path, refused: list[tuple[str, str, str]]) -> dict[str, Path]:
    """Class name (NFC-normalised, so macOS and Linux spellings agree) -> its folder."""
    found = {}
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or _is_hidden(path):
            continue
        if _inside(path, root):
            found[unicodedata.normalize("NFC", path.name)] = path
        else:
            _refuse(path, root, refused)
    return found


def _files(folder: Path, root: Path, refused: list[tuple[str, str, str]]) -> list[Path]:
    """Image candidates under one class folder, recursively; linked folders are not followed."""
    found = []
    for parent, dirs, names in os.walk(folder):
        for name in dirs:
            if (Path(parent) / name).is_symlink() and not _inside(Path(parent) / name, root):
                _refuse(Path(parent) / name, root, refused)
        dirs[:] = sorted(d for d in dirs if not _is_hidden(Path(d)))
        for path in (Path(parent) / name for name in sorted(names)):
            if _is_hidden(path):
                continue
            if path.is_symlink() and not _inside(path, root):
                _refuse(path, root, refused)
            else:
                found.append(path)
    return found


def _layout(root: Path, refused: list[tuple[str, str, str]]) -> dict[str, dict[str, Path]]:
    """{split folder: {class: folder}}; "" for a plain folder of class sub-folders."""
    subfolders = {p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p)}
    if "train" in subfolders and subfolders <= set(SPLIT_FOLDERS):
        return {s: _class_folders(root / s, root, refused) for s in sorted(subfolders)}
    return {"": _class_folders(root, root, refused)}


@SOURCES.register("folder")
def folder(location: Path | None, classes: Sequence[str] | None, image_size: int, color: str) -> Intake:
    """A folder of class sub-folders of images (PNG, JPEG, BMP, GIF, WebP), optionally under train/ and test/."""
    assert location is not None
    root = location.resolve()
    refused: list[tuple[str, str, str]] = []
    layout = _layout(root, refused)
    known = sorted({name for by_class in layout.values() for name in by_class})
    if not known:
        raise DataError(
            f"{location} has no class sub-folders. Expected {location}/<class>/<image files> "
            f"(or {location}/train/<class>/... and {location}/test/<class>/...)."
        )
    wanted = [known[i] for i in select_classes(known, classes, str(location))]
    require_classes(wanted, str(location))
    entries: list[tuple[Path, int, bool]] = []
    for split, by_class in layout.items():
        for label, name in enumerate(wanted):
            if name in by_class:
                own_test = SPLIT_FOLDERS.get(split, False)
                entries += [(f, label, own_test) for f in _files(by_class[name], root, refused)]
    if not entries and not refused:
        raise DataError(f"{location} holds no files in its class sub-folders ({', '.join(wanted)}).")
    return _decode(entries, wanted, refused, image_size, color, root)


def _decode(
    entries: list[tuple[Path, int, bool]],
    classes: list[str],
    quarantined: list[tuple[str, str, str]],
    image_size: int,
    color: str,
    root: Path,
) -> Intake:
    x = np.empty((len(entries), CHANNELS[color], image_size, image_size), dtype=np.uint8)
    keep: list[int] = []
    for i, (path, _, _) in enumerate(progress.track(entries, "decoding images")):
        try:
            x[i] = decode_file(path, image_size, color)
            keep.append(i)
        except Rejected as rejected:
            quarantined.append((rejected.rule, str(path.relative_to(root)), rejected.reason))
    return Intake(
        classes=classes,
        x=x[keep],
        y=np.array([entries[i][1] for i in keep], dtype=np.int64),
        names=[str(entries[i][0].relative_to(root)) for i in keep],
        test=np.array([entries[i][2] for i in keep], dtype=bool),
        quarantined=quarantined,
    )
