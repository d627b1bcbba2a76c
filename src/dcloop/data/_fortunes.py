"""The built-in text source ``fortunes``: topical quotations from Debian's fortunes package, labelled by
the category file they ship in.

Each category is a file of entries separated by lines holding only ``%``; the package's offensive
files live under ``off/`` (package fortunes-off) and are never read. The default classes are five
categories of 600-1,050 entries whose vocabularies barely overlap (computers, politics, science,
songs-poems, work), so the task is learnable but not trivial: humour and quotation style are shared
by all of them. ``--classes`` picks any other categories of the package.

Entries keep their text as written, attribution lines ("-- Mark Twain") included, minus the
overstrike sequences (``_\\bx``: underline on a line printer) that some entries use for emphasis.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from dcloop.data._intake import BUILTIN, SOURCES, TEXT, Intake, select_classes
from dcloop.data._text_sources import Rows, to_intake
from dcloop.errors import DataError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
DEFAULT_CLASSES = ("computers", "politics", "science", "songs-poems", "work")
LICENSE = (
    "BSD-3-Clause (Copyright (c) 1991 The Regents of the University of California; "
    "/usr/share/doc/fortunes/copyright), per-file notes in that file"
)
_MISSING = "Source 'fortunes' needs Debian's fortunes package: apt-get install fortunes."
_OVERSTRIKE = re.compile(r"[^\x08\n]\x08")  # a character and the backspace that strikes over it
_SEPARATOR = re.compile(rb"^%[ \t]*$", re.MULTILINE)


def categories(folder: Path) -> list[str]:
    """The category files of the package (no index .dat files, no .u8 links, nothing under off/)."""
    return sorted(
        p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink() and "." not in p.name
    )


def entries(payload: bytes) -> list[bytes]:
    """The entries of one category file, without their separators and surrounding blank lines."""
    return [chunk.strip(b"\r\n") for chunk in _SEPARATOR.split(payload) if chunk.strip()]


@SOURCES.register("fortunes")
def fortunes(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """Debian's fortunes: quotations labelled by topic (default computers, politics, science, songs-poems, work)."""
    if not FORTUNES_DIR.is_dir():
        raise DataError(_MISSING)
    known = categories(FORTUNES_DIR)
    if not known:
        raise DataError(_MISSING)
    wanted = list(classes) if classes else [c for c in DEFAULT_CLASSES if c in known]
    rows, digests = Rows(), {}
    for category in (known[i] for i in select_classes(known, wanted, "fortunes")):
        payload = (FORTUNES_DIR / category).read_bytes()
        digests[category] = hashlib.sha256(payload).hexdigest()
        for k, chunk in enumerate(entries(payload)):
            name = f"fortunes/{category}#{k}"
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                rows.quarantined.append(("undecodable", name, f"not valid UTF-8 (byte {exc.start})"))
                continue
            rows.add(_strike_out(text), category, name, "category")
    intake = to_intake(rows, None, "fortunes", "category")
    intake.provenance = {
        "package": f"fortunes=={_package_version()}",
        "license": LICENSE,
        "folder": str(FORTUNES_DIR),
        "files": digests,
    }
    return intake


def _strike_out(text: str) -> str:
    """What a screen shows of overstruck text: "_\bI" is "I", "___\b\b\bnot" is "not"."""
    while "\x08" in text:
        text, n = _OVERSTRIKE.subn("", text)
        if not n:  # a backspace at the start of a line has nothing to strike
            text = text.replace("\x08", "")
    return text


def _package_version() -> str:
    """The installed package's version from dpkg, or "unknown" off Debian."""
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return "unknown"
    found = subprocess.run(
        [dpkg, "-W", "-f=${Version}", "fortunes"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


BUILTIN.add("fortunes")
TEXT.add("fortunes")
