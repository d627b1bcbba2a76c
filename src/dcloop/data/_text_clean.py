"""Cleaning rules for texts, and their report (the text side of ``_clean``; same report shape).

Rules, in order: inputs the source could not use are quarantined with their reason (undecodable:
not valid UTF-8; unreadable; missing_label; symlink_outside; not_text: a file that is no .txt in a
text folder); empty or whitespace-only texts are dropped (empty); a text that appears with more than
one label is excluded in every copy (conflict); remaining duplicates collapse to one (duplicate).
Texts are compared after Unicode NFKC normalisation and whitespace collapse, so "café" typed with a
combining accent and a double space counts once. Texts over ``max_chars`` characters are kept and
counted (long): the tokenizer truncates them, and ``tokenize_dataset`` reports how many it cut.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dcloop.data._clean import MAX_EXAMPLES, _report, merge_reports, resolve_groups

TEXT_QUARANTINE_RULES = ("undecodable", "unreadable", "missing_label", "symlink_outside", "not_text")
TEXT_RULES = (*TEXT_QUARANTINE_RULES, "empty", "conflict", "duplicate")


def normalize(text: str) -> str:
    """NFKC, then every run of whitespace as one space, trimmed: the form duplicates are found in."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_digest(text: str) -> str:
    """Content hash of one text in its normalised form."""
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).hexdigest()


def clean_texts(
    texts: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    quarantined: Sequence[tuple[str, str, str]] = (),
    *,
    max_chars: int,
    dedupe: bool = True,
    prefer: np.ndarray | None = None,
    known: Mapping[str, int] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of the texts to keep (ascending) and the cleaning report.

    ``prefer`` marks texts to keep when a duplicate group has one (a source's own test split);
    ``known`` maps digests of texts already in a base version to their labels, so new texts that
    repeat them are duplicates, or conflicts when the label differs.
    """
    known = known or {}
    dropped: dict[str, list[tuple[str, str]]] = {rule: [] for rule in TEXT_RULES}
    for rule, path, reason in quarantined:
        dropped[rule].append((path, reason))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        if not text.strip():
            dropped["empty"].append((names[i], "empty or whitespace only"))
        else:
            groups[text_digest(text)].append(i)
    kept = resolve_groups(groups, y, names, known, prefer, dedupe, dropped, "text", " (after normalisation)")
    report = _report(len(texts) + len(quarantined), len(kept), dropped, TEXT_QUARANTINE_RULES)
    long = [names[i] for i in kept if len(texts[i]) > max_chars]
    report["long"] = {"max_chars": max_chars, "count": len(long), "examples": long[:MAX_EXAMPLES]}
    return kept, report


def merge_text_reports(base: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """The report of a text version built from ``base`` plus texts cleaned into ``added``."""
    merged = merge_reports(base, added, TEXT_RULES)
    long_base, long_added = base.get("long", {}), added.get("long", {})
    merged["long"] = {
        "max_chars": long_added.get("max_chars", long_base.get("max_chars")),
        "count": long_base.get("count", 0) + long_added.get("count", 0),
        "examples": (long_base.get("examples", []) + long_added.get("examples", []))[:MAX_EXAMPLES],
    }
    if "label_variants" in base:
        merged["label_variants"] = base["label_variants"]
    return merged
