"""Writes that never leave a half-written file: a temporary name in the same folder, then a rename.

Every artifact dcloop stores (configs, weights, checkpoints, ONNX files, data set versions, reports)
goes through here. ``replacing`` and ``replacing_dir`` hand the writer a temporary path beside the
target and rename it into place only when the block ends without an error; on an error the
temporary is removed and the target is untouched. The rename is atomic because both names are in
one folder (one file system). Temporary names are unique, so two writers never share one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary(path: Path) -> Path:
    # keep the real suffix last: some writers (onnx.save) pick a format from it
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path`` (folder created); rename it onto ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replacing_dir(path: Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; rename it to ``path`` on success.

    ``path`` must not exist by then as a non-empty folder (the rename would fail): a caller that
    replaces one removes it inside the block, after everything new is written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, byte for byte: no newline translation) to ``path`` atomically, creating its
    folder; returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return path


def copy_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically, creating its folder; returns ``target``."""
    with replacing(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
