"""The text modality of a deployable model: its tokenizer, its length limit, and batches of token ids.

A text model version is a folder: ``model.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64
(B, T), output ``logits`` (B, K), batch and sequence axes dynamic), ``tokenizer.json`` (a Hugging
Face fast tokenizer that adds its own special tokens) and ``model.json`` saying ``"modality": "text"``
and ``input.max_length``. The server tokenizes here, with the ``tokenizers`` library only (no torch),
and pads each batch to its longest member, not to ``max_length``.

Truncation: a text longer than ``max_length`` tokens (special tokens included) keeps its first
``max_length`` tokens. Tokenizing costs time in proportion to the characters, so a text is first cut
to ``CHARS_PER_TOKEN * max_length`` characters; only when that prefix gives fewer than ``max_length``
tokens is a longer prefix (at most the whole text) tokenized.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.errors import DataError, StoreError

SPEC_FILE = "model.json"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")
CHARS_PER_TOKEN = 16  # the first cut of a long text: far more characters than any language spends per token
MAX_LENGTH = 8192  # the longest max_length a spec may declare


@dataclass(frozen=True)
class TextSpec:
    """What a text model expects: its tokenizer (truncating at ``max_length``) and ids of note."""

    tokenizer: Any  # tokenizers.Tokenizer, truncation on, padding off
    max_length: int
    pad_id: int
    unk_id: int | None
    tokenizer_sha256: str


@dataclass(frozen=True)
class TokenBatch:
    """Token ids of a batch padded to its longest member, and per text its length and whether it was cut."""

    ids: np.ndarray  # int64 (N, T), T = the longest text's tokens
    mask: np.ndarray  # int64 (N, T), 1 on tokens, 0 on padding
    lengths: np.ndarray  # int64 (N,)
    truncated: np.ndarray  # bool (N,)
    unknown: np.ndarray  # float64 (N,): share of each text's tokens that are the unknown token


def read_spec(folder: Path) -> dict[str, Any] | None:
    """The ``model.json`` of a text model in ``folder`` (checked), or None for an image model."""
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path} must be a JSON object describing the model. It cannot be read: {exc}."
        ) from None
    if not isinstance(spec, dict) or spec.get("modality", "image") == "image":
        return None
    if spec.get("modality") != "text":
        raise DataError(f"{path} field `modality` must be 'image' or 'text'. Got {spec.get('modality')!r}.")
    length = (spec.get("input") or {}).get("max_length") if isinstance(spec.get("input"), dict) else None
    if not isinstance(length, int) or isinstance(length, bool) or not 2 <= length <= MAX_LENGTH:
        raise DataError(f"{path} field `input.max_length` must be an integer 2-{MAX_LENGTH}. Got {length!r}.")
    tokenizer = folder / str(spec.get("tokenizer") or TOKENIZER_FILE)
    if not tokenizer.is_file():
        raise DataError(f"{path} names tokenizer {tokenizer.name}, but {tokenizer} is missing.")
    pad = spec["input"].get("pad_id")
    if pad is not None and (not isinstance(pad, int) or isinstance(pad, bool) or pad < 0):
        raise DataError(f"{path} field `input.pad_id` must be a token id (an integer >= 0). Got {pad!r}.")
    return {"modality": "text", "max_length": length, "tokenizer_path": tokenizer, "pad_id": pad}


def load_spec(
    tokenizer_path: Path, max_length: int, sha256: str | None = None, pad_id: int | None = None
) -> TextSpec:
    """The tokenizer at ``tokenizer_path`` set to truncate at ``max_length`` and not to pad.

    ``sha256``: the content address recorded at registration; a changed file is refused. ``pad_id``:
    the id padding uses (default: the tokenizer's own padding id, else its [PAD] or <pad>, else 0).
    """
    from tokenizers import Tokenizer

    data = tokenizer_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise StoreError(f"Tokenizer {tokenizer_path} does not match its sha256; refusing to load it.")
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # the Rust side raises plain Exception for any malformed tokenizer
        raise DataError(f"{tokenizer_path} is not a tokenizers JSON file: {str(exc)[:200]}.") from None
    if pad_id is None:
        pad_id = (tokenizer.padding or {}).get("pad_id")
    for token in ("[PAD]", "<pad>"):
        if pad_id is None:
            pad_id = tokenizer.token_to_id(token)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    unk = getattr(tokenizer.model, "unk_token", None)
    unk_id = tokenizer.token_to_id(unk) if unk else None
    return TextSpec(tokenizer, max_length, int(pad_id or 0), unk_id, digest)


def encode(spec: TextSpec, texts: list[str]) -> TokenBatch:
    """Token ids of ``texts`` for the model, padded to the longest (see the module doc on truncation)."""
    cut = CHARS_PER_TOKEN * spec.max_length
    encodings = spec.tokenizer.encode_batch([t[:cut] for t in texts])
    for i, text in enumerate(texts):
        size = cut
        while len(text) > size and not encodings[i].overflowing:  # the prefix fell short of max_length
            size *= 4
            encodings[i] = spec.tokenizer.encode(text[:size])
    n, longest = len(texts), max(len(e.ids) for e in encodings)
    ids = np.full((n, longest), spec.pad_id, dtype=np.int64)
    mask = np.zeros((n, longest), dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    unknown = np.zeros(n, dtype=np.float64)
    for i, e in enumerate(encodings):
        row = np.asarray(e.ids, dtype=np.int64)
        ids[i, : len(row)], mask[i, : len(row)], lengths[i] = row, 1, len(row)
        content = len(row) - sum(e.special_tokens_mask)
        if spec.unk_id is not None and content:
            unknown[i] = float((row == spec.unk_id).sum()) / content
    truncated = np.array([bool(e.overflowing) for e in encodings], dtype=bool)
    return TokenBatch(ids, mask, lengths, truncated, unknown)


def inspect_text_onnx(path: Path) -> int:
    """Number of classes of a text ONNX classifier, checked against the text contract."""
    from dcloop.optimize._onnx import onnx_session

    session = onnx_session(path, 1, spinning=False)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = sorted(i.name for i in inputs)
    if names != sorted(INPUT_NAMES) or any(len(i.shape) != 2 or i.type != "tensor(int64)" for i in inputs):
        got = [(i.name, i.type, i.shape) for i in inputs]
        raise DataError(f"{path} must take input_ids and attention_mask, int64 (B, T). Got {got}.")
    out = outputs[0].shape
    if len(out) != 2 or not isinstance(out[1], int):
        raise DataError(f"{path} output must be logits shaped (B, K). Got {out}.")
    return int(out[1])


def registered_spec(max_length: int, pad_id: int, tokenizer_sha256: str) -> str:
    """The ``model.json`` a registered text version carries beside its ONNX file and tokenizer."""
    spec = {
        "modality": "text",
        "input": {
            "names": list(INPUT_NAMES),
            "dtype": "int64",
            "max_length": max_length,
            "pad_id": pad_id,
        },
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_sha256": tokenizer_sha256,
    }
    return json.dumps(spec, indent=2) + "\n"


def load_registered(folder: Path) -> TextSpec | None:
    """The text spec of a registered version's folder (tokenizer checked by its sha256), or None for images."""
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("modality") != "text":
        return None
    given = spec["input"]
    return load_spec(
        folder / spec["tokenizer"],
        int(given["max_length"]),
        spec.get("tokenizer_sha256"),
        given.get("pad_id"),
    )
