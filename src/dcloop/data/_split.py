"""Stratified, seeded train/val/test splits."""

from __future__ import annotations

import numpy as np


def stratified_split(
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Disjoint, sorted index arrays {"train", "val", "test"} covering ``range(len(y))``.

    Within each class, round(n * test_fraction) examples go to test and round(rest * val_fraction)
    to val, so every split's class counts are within one of their exact shares. When ``test`` marks a
    source's own test split, it is kept as is and only the rest is split into train and val. Each
    class draws from its own generator seeded by (seed, class), so a split depends only on the seed.
    """
    own_test = test is not None and bool(test.any())
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if own_test:
            assert test is not None
            parts["test"].append(members[test[members]])
            members = members[~test[members]]
        shuffled = np.random.default_rng([seed % 2**64, int(label)]).permutation(members)
        n_test = 0 if own_test else round(len(shuffled) * test_fraction)
        n_val = round((len(shuffled) - n_test) * val_fraction)
        parts["test"].append(shuffled[:n_test])
        parts["val"].append(shuffled[n_test : n_test + n_val])
        parts["train"].append(shuffled[n_test + n_val :])
    return {
        name: np.sort(np.concatenate(chunks)).astype(np.int64) if chunks else np.zeros(0, np.int64)
        for name, chunks in parts.items()
    }
