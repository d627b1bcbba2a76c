"""Token arrays of a text version, cached per (version, tokenizer, max length).

Tokenizing a few thousand texts is cheap but not free, and every training, evaluation and drift
reference needs the same arrays, so they are computed once and kept beside the version:
``datasets/<id>/tokens/<key>/`` (ids.npy, lengths.npy, meta.json), where ``key`` is the first 16
hex digits of sha256(tokenizer JSON + max length). The folder is written under a temporary name and
renamed, and loaded memory-mapped; the version itself is never changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcloop.atomic import replacing_dir
from dcloop.data._version import PreparedDataset
from dcloop.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

_FILES = ("ids.npy", "lengths.npy", "meta.json")


@dataclass(frozen=True)
class TokenArrays:
    """Token ids int32 (N, max_length) padded with the tokenizer's pad id, ``lengths`` int32 (N,)
    (tokens before padding, after truncation), how many texts were ``truncated``, and the cache ``key``."""

    ids: np.ndarray
    lengths: np.ndarray
    truncated: int
    key: str

    def attention_mask(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """int64 (n, max_length): 1 over each text's tokens, 0 over padding."""
        lengths = np.asarray(self.lengths[index])
        return (np.arange(self.ids.shape[1]) < lengths[:, None]).astype(np.int64)


def token_key(tokenizer: Tokenizer, max_length: int) -> str:
    """The cache key of (tokenizer, max_length): the same tokenizer JSON and length, the same key."""
    return hashlib.sha256((tokenizer.to_str() + str(max_length)).encode("utf-8")).hexdigest()[:16]


def pad_id(tokenizer: Tokenizer) -> int:
    """The id the tokenizer pads with (its padding setting), 0 when it has none."""
    padding = tokenizer.padding
    return int(padding["pad_id"]) if padding else 0


def encode_texts(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids int32 (N, max_length) padded with the pad id, and lengths int32 (N,).

    The tokenizer adds its special tokens ([CLS]/[SEP]) and truncates to ``max_length`` itself, so a
    cut text still ends with its end token. Its own padding and truncation settings are replaced on a
    copy; the caller's tokenizer is left as it was.
    """
    ids, lengths, _ = _encode(tokenizer, texts, max_length)
    return ids, lengths


def _encode(
    tokenizer: Tokenizer, texts: Sequence[str] | np.ndarray, max_length: int
) -> tuple[np.ndarray, np.ndarray, int]:
    from tokenizers import Tokenizer

    if not isinstance(max_length, int) or max_length < 2:
        raise DataError(
            f"max_length must be an integer of at least 2 (room for special tokens). Got {max_length!r}."
        )
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.enable_truncation(max_length)
    encodings = copy.encode_batch([str(t) for t in texts])
    ids = np.full((len(encodings), max_length), pad_id(tokenizer), dtype=np.int32)
    lengths = np.zeros(len(encodings), dtype=np.int32)
    truncated = 0
    for i, encoding in enumerate(encodings):
        lengths[i] = len(encoding.ids)
        ids[i, : lengths[i]] = encoding.ids
        truncated += bool(encoding.overflowing)
    return ids, lengths, truncated


def tokenize_dataset(dataset: PreparedDataset, tokenizer: Tokenizer, max_length: int) -> TokenArrays:
    """Token arrays of every text of ``dataset`` (index them with ``dataset.splits``), from the cache
    beside the version when there, else tokenized once and cached. A version with no folder (built in
    memory) is tokenized each time."""
    if dataset.modality != "text":
        raise DataError(
            f"Data set version {dataset.record.short_id} holds {dataset.modality}; only text versions tokenize."
        )
    key = token_key(tokenizer, max_length)
    if not dataset.record.path or not (Path(dataset.record.path) / "manifest.json").is_file():
        ids, lengths, truncated = _encode(tokenizer, dataset.x, max_length)  # a version not at rest
        return TokenArrays(ids=ids, lengths=lengths, truncated=truncated, key=key)
    folder = Path(dataset.record.path) / "tokens" / key
    cached = _load(folder, key, len(dataset.y), max_length)
    if cached is not None:
        return cached
    ids, lengths, truncated = _encode(tokenizer, dataset.x, max_length)
    meta = {
        "key": key,
        "dataset": dataset.id,
        "max_length": max_length,
        "num_texts": len(ids),
        "truncated": truncated,
        "pad_id": pad_id(tokenizer),
        "vocab_size": tokenizer.get_vocab_size(),
    }
    try:
        with replacing_dir(folder) as tmp:
            np.save(tmp / "ids.npy", ids)
            np.save(tmp / "lengths.npy", lengths)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)  # a damaged cache of this key, found unusable above
    except OSError as exc:
        if _load(folder, key, len(ids), max_length) is None:  # not a concurrent writer of the same key
            log.warning("token cache %s not written: %s", folder, exc.strerror or exc)
    log.info(
        "tokenized %d texts of %s (%d truncated) -> %s", len(ids), dataset.record.short_id, truncated, key
    )
    return TokenArrays(ids=ids, lengths=lengths, truncated=truncated, key=key)


def _load(folder: Path, key: str, n: int, max_length: int) -> TokenArrays | None:
    """The cached arrays, or None when absent or not what this version and length need."""
    if not all((folder / name).is_file() for name in _FILES):
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        ids = np.load(folder / "ids.npy", mmap_mode="r", allow_pickle=False)
        lengths = np.load(folder / "lengths.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("token cache %s unreadable (%s); tokenizing again", folder, exc)
        return None
    if ids.shape != (n, max_length) or lengths.shape != (n,) or meta.get("key") != key:
        log.warning("token cache %s does not match its version; tokenizing again", folder)
        return None
    return TokenArrays(ids=ids, lengths=lengths, truncated=int(meta["truncated"]), key=key)
