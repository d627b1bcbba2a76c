"""Text sources, their common tail, and folders of ``<class>/<file>.txt`` (optionally under ``train/``
and ``test/``, whose split is kept; tables live in ``_text_tables``).

A file that cannot be decoded as UTF-8, or a row with no label, is quarantined with its reason and
the import goes on. Labels are compared after NFKC, whitespace collapse and case folding, so
"Positive" and "positive " are one class (named by its most common spelling); the spellings merged
are reported as ``label_variants``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcloop.data._folder import SPLIT_FOLDERS, _files, _layout, _relative
from dcloop.data._intake import SOURCES, TEXT, Intake, require_classes, select_classes
from dcloop.data._text_clean import normalize
from dcloop.errors import DataError

TEXT_SUFFIXES = {".txt", ".text"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Rows:
    """What a text source read: texts with their raw labels, where each came from, own-test marks."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    test: list[bool] = field(default_factory=list)
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, text: str, label: object, name: str, label_field: str, test: bool = False) -> None:
        missing = label is None or (isinstance(label, float) and math.isnan(label))  # pandas writes NaN
        raw = "" if missing else str(label)
        if not raw.strip():
            self.quarantined.append(("missing_label", name, f"empty {label_field!r}"))
            return
        self.texts.append(text)
        self.labels.append(raw)
        self.names.append(name)
        self.test.append(test)


def label_key(raw: str) -> str:
    """Spellings of one label compare equal under this key: "Positive", "positive ", "POSITIVE"."""
    return normalize(raw).casefold()


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isascii() and name.isdigit() else (1, name)


def to_intake(rows: Rows, wanted: Sequence[str] | None, origin: str, label_field: str) -> Intake:
    """Class names from the labels' canonical spellings, the wanted classes kept, relabelled 0..K-1."""
    if not rows.labels and not any(rule != "missing_label" for rule, _, _ in rows.quarantined):
        raise DataError(f"{origin}: {label_field!r} is empty in every row; each text needs a label.")
    spellings: dict[str, Counter[str]] = {}
    for raw in rows.labels:
        spellings.setdefault(label_key(raw), Counter())[raw] += 1
    canonical = {key: _most_common_spelling(seen) for key, seen in spellings.items()}
    known = sorted(canonical.values(), key=_natural)
    by_key = {label_key(name): name for name in known}  # --classes may use any spelling of a label
    picked = select_classes(known, [by_key.get(label_key(w), w) for w in wanted or []], origin)
    names = [known[i] for i in picked]
    require_classes(names, f"{origin} ({label_field!r})")
    index = {label_key(name): i for i, name in enumerate(names)}
    keep = [i for i, raw in enumerate(rows.labels) if label_key(raw) in index]
    texts = np.empty(len(keep), dtype=object)
    texts[:] = [rows.texts[i] for i in keep]
    variants = {canonical[k]: sorted(seen) for k, seen in spellings.items() if len(seen) > 1}
    return Intake(
        classes=names,
        x=texts,
        y=np.array([index[label_key(rows.labels[i])] for i in keep], dtype=np.int64),
        names=[rows.names[i] for i in keep],
        test=np.array([rows.test[i] for i in keep], dtype=bool),
        quarantined=rows.quarantined,
        modality="text",
        notes={"label_variants": variants} if variants else {},
    )


def _most_common_spelling(seen: Counter[str]) -> str:
    """The normalised spelling most rows use (ties: lower case first, then sort order)."""
    tally = Counter[str]()
    for raw, n in seen.items():
        tally[normalize(raw)] += n
    return min(tally, key=lambda spelling: (-tally[spelling], spelling != spelling.lower(), spelling))


@SOURCES.register("text-folder")
def text_folder(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """A folder of class sub-folders of .txt files, optionally under train/ and test/."""
    assert location is not None
    root = location.resolve()
    rows = Rows()
    layout = _layout(root, rows.quarantined)
    if not any(layout.values()):
        raise DataError(f"{location} has no class sub-folders. Expected {location}/<class>/<file>.txt.")
    for split, by_class in layout.items():
        for label, folder in by_class.items():
            for path in _files(folder, root, rows.quarantined):
                _read_text_file(path, root, label, SPLIT_FOLDERS.get(split, False), rows)
    return to_intake(rows, classes, str(location), "class folder")


def _read_text_file(path: Path, root: Path, label: str, test: bool, rows: Rows) -> None:
    name = _relative(path, root)
    if path.suffix.lower() not in TEXT_SUFFIXES:
        rows.quarantined.append(("not_text", name, f"not a {'/'.join(sorted(TEXT_SUFFIXES))} file"))
        return
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        rows.quarantined.append(("unreadable", name, f"cannot be read: {exc.strerror or exc}"))
    except UnicodeDecodeError as exc:
        rows.quarantined.append(("undecodable", name, f"not valid UTF-8 (byte {exc.start})"))
    else:
        rows.add(text, label, name, "class folder", test)


def is_text_folder(path: Path, most: int = 2000) -> bool:
    """True when the folder's files (the first ``most`` found) are more often text than images."""
    seen = Counter[str]()
    for _, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in names:
            suffix = os.path.splitext(name)[1].lower()
            seen["text" if suffix in TEXT_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else "other"] += 1
        if sum(seen.values()) >= most:
            break
    return seen["text"] > seen["image"]


TEXT.add("text-folder")
