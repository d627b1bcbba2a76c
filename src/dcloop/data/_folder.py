"""Folder sources: ``<root>/<class>/<image>``, or ``<root>/train/<class>/...`` plus ``<root>/test/...``.

Only links that stay inside the source folder are read, so importing a folder never pulls in files
from elsewhere on the machine. Every file that cannot be used (a link out or in a loop, unreadable,
no image, damaged, over the pixel budget) is quarantined with its reason and the import goes on.
Paths are recorded as text: bytes of a name that are not UTF-8 show as ``\\xNN`` escapes.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcloop import progress
from dcloop.config import MAX_IMAGE_PIXELS
from dcloop.data._convert import CHANNELS
from dcloop.data._decode import ImageRejected, decode_image
from dcloop.data._intake import SOURCES, Intake, require_classes, select_classes
from dcloop.errors import DataError

# Split folder -> whether it is the source's own test split; val folders join the pool that is re-split.
SPLIT_FOLDERS = {"train": False, "val": False, "valid": False, "validation": False, "test": True}

Refused = list[tuple[str, str, str]]


def _is_hidden(path: Path) -> bool:
    return path.name.startswith((".", "__"))  # .DS_Store, .git, __MACOSX


def shown(name: str) -> str:
    """A file name as text that any JSON or terminal takes: undecodable bytes become \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _relative(path: Path, root: Path) -> str:
    return shown(str(path.relative_to(root)))


def _target(path: Path) -> Path | None:
    """Where ``path`` leads, or None when its links loop (RuntimeError on Python 3.11, OSError later)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def _linked_out(path: Path, root: Path, refused: Refused) -> bool:
    """True (and the path quarantined) when ``path`` is a link that loops or leads out of ``root``."""
    if not path.is_symlink():
        return False
    target = _target(path)
    if target is None:
        refused.append(("unreadable", _relative(path, root), "symlink loop"))
        return True
    if target.is_relative_to(root):
        return False
    reason = f"symlink points outside the source folder (to {shown(str(target))})"
    refused.append(("symlink_outside", _relative(path, root), reason))
    return True


def _class_folders(folder: Path, root: Path, refused: Refused) -> dict[str, Path]:
    """Class name (NFC-normalised, so macOS and Linux spellings agree) -> its folder."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not _is_hidden(path) and not _linked_out(path, root, refused):
            found[unicodedata.normalize("NFC", shown(path.name))] = path
    return found


def _files(folder: Path, root: Path, refused: Refused) -> list[Path]:
    """Image candidates under one class folder, recursively; linked folders are not followed."""

    def unreadable(exc: OSError) -> None:
        where = _relative(Path(exc.filename), root) if exc.filename else shown(str(folder))
        refused.append(("unreadable", where, f"cannot be read: {exc.strerror or exc}"))

    found = []
    for parent, dirs, names in os.walk(folder, onerror=unreadable):
        for name in dirs:
            _linked_out(Path(parent) / name, root, refused)
        dirs[:] = sorted(d for d in dirs if not _is_hidden(Path(d)))
        for path in (Path(parent) / name for name in sorted(names)):
            if not _is_hidden(path) and not _linked_out(path, root, refused):
                found.append(path)
    return found


def _layout(root: Path, refused: Refused) -> dict[str, dict[str, Path]]:
    """{split folder: {class: folder}}; "" for a plain folder of class sub-folders."""
    subfolders = {p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p)}
    if "train" in subfolders and subfolders <= set(SPLIT_FOLDERS):
        return {s: _class_folders(root / s, root, refused) for s in sorted(subfolders)}
    return {"": _class_folders(root, root, refused)}


@SOURCES.register("folder")
def folder(
    location: Path | None,
    classes: Sequence[str] | None,
    image_size: int,
    color: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Intake:
    """A folder of class sub-folders of images (PNG, JPEG, BMP, GIF, WebP), optionally under train/ and test/."""
    assert location is not None
    root = location.resolve()
    refused: Refused = []
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
    return _decode(entries, wanted, refused, (CHANNELS[color], image_size, max_pixels), root)


def _decode(
    entries: list[tuple[Path, int, bool]],
    classes: list[str],
    quarantined: Refused,
    target: tuple[int, int, int],
    root: Path,
) -> Intake:
    channels, size, max_pixels = target
    x = np.empty((len(entries), channels, size, size), dtype=np.uint8)
    keep: list[int] = []
    with warnings.catch_warnings():
        # Pillow warns about damaged metadata and large images; the verdict on each file is recorded below.
        warnings.filterwarnings("ignore", module="PIL")
        for i, (path, _, _) in enumerate(progress.track(entries, "decoding images")):
            try:
                x[i] = decode_image(path, channels, size, size, max_pixels)
                keep.append(i)
            except ImageRejected as rejected:
                fix = "; raise data.max_image_pixels to import it" if rejected.rule == "too_large" else ""
                quarantined.append((rejected.rule, _relative(path, root), rejected.reason + fix))
    return Intake(
        classes=classes,
        x=x[keep],
        y=np.array([entries[i][1] for i in keep], dtype=np.int64),
        names=[_relative(entries[i][0], root) for i in keep],
        test=np.array([entries[i][2] for i in keep], dtype=bool),
        quarantined=quarantined,
    )
