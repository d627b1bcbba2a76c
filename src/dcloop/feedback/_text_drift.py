"""What text drift is measured on: per text, its token length, its share of unknown tokens, and its
share of tokens the training texts never used (a vocabulary seen in training, as a boolean mask).

Tokenized with the served version's own tokenizer (``deploy._text``), so the lengths are the ones the
model read, cut at its ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dcloop.deploy._text import TextSpec, encode

CHUNK = 256  # texts tokenized at once: each chunk pads only to its own longest


def vocabulary(spec: TextSpec, texts: Sequence[str]) -> np.ndarray:
    """Boolean mask over token ids: True for every id the ``texts`` use (special tokens included)."""
    seen = np.zeros(spec.tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    for start in range(0, len(texts), CHUNK):
        batch = encode(spec, [str(t) for t in texts[start : start + CHUNK]])
        seen[batch.ids[batch.mask == 1]] = True
    return seen


def text_features(spec: TextSpec, texts: Sequence[str], seen: np.ndarray) -> dict[str, np.ndarray]:
    """Per-text features PSI watches: ``token_length``, ``unknown_share``, ``unseen_share``."""
    lengths, unknown, unseen = [], [], []
    for start in range(0, len(texts), CHUNK):
        batch = encode(spec, [str(t) for t in texts[start : start + CHUNK]])
        known = seen[np.minimum(batch.ids, len(seen) - 1)] & (batch.ids < len(seen))
        outside = ((~known) & (batch.mask == 1)).sum(axis=1)
        lengths.append(batch.lengths)
        unknown.append(batch.unknown)
        unseen.append(outside / np.maximum(batch.lengths, 1))
    if not lengths:
        empty = np.zeros(0, dtype=np.float64)
        return {"token_length": empty, "unknown_share": empty, "unseen_share": empty}
    return {
        "token_length": np.concatenate(lengths).astype(np.float64),
        "unknown_share": np.concatenate(unknown),
        "unseen_share": np.concatenate(unseen).astype(np.float64),
    }
