"""Cleaning rules applied to decoded images, and the report that counts them per rule.

Rules, in order: inputs the source could not use are quarantined (empty_file, not_an_image,
undecodable, too_large, unreadable, symlink_outside), each with its reason; constant images are dropped (blank); an image that appears with more
than one label is excluded in every copy (conflict); remaining exact pixel duplicates collapse to one
(duplicate). Duplicates are found on the decoded, converted pixels, so one picture saved as PNG and
as BMP counts once.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUARANTINE_RULES = ("empty_file", "not_an_image", "undecodable", "too_large", "unreadable", "symlink_outside")
RULES = (*QUARANTINE_RULES, "blank", "conflict", "duplicate")
MAX_EXAMPLES = 5


def digest(image: np.ndarray) -> str:
    """Content hash of one image's pixels (after conversion)."""
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest()


def clean(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    quarantined: Sequence[tuple[str, str, str]] = (),
    *,
    drop_blank: bool = True,
    dedupe: bool = True,
    prefer: np.ndarray | None = None,
    known: Mapping[str, int] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of the examples to keep (ascending) and the cleaning report.

    ``prefer`` marks examples to keep when a duplicate group has one (a source's own test split, so
    test stays intact); ``known`` maps digests of images already in a base version to their labels,
    so new examples that repeat them are duplicates, or conflicts when the label differs.
    """
    known = known or {}
    dropped: dict[str, list[tuple[str, str]]] = {rule: [] for rule in RULES}
    for rule, path, reason in quarantined:
        dropped[rule].append((path, reason))
    flat = x.reshape(len(x), int(np.prod(x.shape[1:])))
    blank = (flat.min(axis=1) == flat.max(axis=1)) if drop_blank and len(x) else np.zeros(len(x), bool)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(len(x)):
        if blank[i]:
            dropped["blank"].append((names[i], f"constant image (value {int(flat[i, 0])})"))
        else:
            groups[digest(x[i])].append(i)
    kept = resolve_groups(groups, y, names, known, prefer, dedupe, dropped, "pixels", "")
    return kept, _report(len(x) + len(quarantined), len(kept), dropped)


def resolve_groups(
    groups: Mapping[str, list[int]],
    y: np.ndarray,
    names: Sequence[str],
    known: Mapping[str, int],
    prefer: np.ndarray | None,
    dedupe: bool,
    dropped: dict[str, list[tuple[str, str]]],
    what: str,
    how: str,
) -> np.ndarray:
    """The kept indices of examples grouped by content digest: a group whose labels disagree (with each
    other or with an earlier version's ``known`` label) goes to "conflict"; of the rest one example of a
    group is kept (none when an earlier version has it) and the others go to "duplicate"."""
    keep: list[int] = []
    for key, members in groups.items():
        labels = {int(y[i]) for i in members} | ({known[key]} if key in known else set())
        if len(labels) > 1:
            reason = f"same {what} labelled {sorted(labels)}"
            dropped["conflict"] += [(names[i], reason) for i in members]
            continue
        first = _keeper(members, prefer) if key not in known else None
        for i in members:
            if i == first or not dedupe:
                keep.append(i)
            else:
                dropped["duplicate"].append((names[i], f"same {what} as another example{how}"))
    return np.array(sorted(keep), dtype=np.int64)


def _keeper(members: list[int], prefer: np.ndarray | None) -> int:
    if prefer is not None:
        preferred = [i for i in members if prefer[i]]
        if preferred:
            return preferred[0]
    return members[0]


def _report(
    total: int,
    kept: int,
    dropped: dict[str, list[tuple[str, str]]],
    quarantine_rules: Sequence[str] = QUARANTINE_RULES,
) -> dict[str, Any]:
    return {
        "input": total,
        "kept": kept,
        "counts": {rule: len(items) for rule, items in dropped.items()},
        "examples": {
            rule: [{"path": p, "reason": r} for p, r in items[:MAX_EXAMPLES]]
            for rule, items in dropped.items()
            if items
        },
        # every input the source could not use, not just examples: a user must be able to find them all
        "quarantined": [
            {"rule": rule, "path": p, "reason": r} for rule in quarantine_rules for p, r in dropped[rule]
        ],
    }


def merge_reports(
    base: dict[str, Any], added: dict[str, Any], rules: Sequence[str] = RULES
) -> dict[str, Any]:
    """The report of a version built from ``base`` plus examples cleaned into ``added``."""
    counts = {r: base["counts"].get(r, 0) + added["counts"].get(r, 0) for r in rules}
    examples = {
        r: (base["examples"].get(r, []) + added["examples"].get(r, []))[:MAX_EXAMPLES]
        for r in rules
        if base["examples"].get(r) or added["examples"].get(r)
    }
    return {
        "input": base["input"] + added["input"],
        "kept": base["kept"] + added["kept"],
        "counts": counts,
        "examples": examples,
        "quarantined": base.get("quarantined", []) + added.get("quarantined", []),
    }
