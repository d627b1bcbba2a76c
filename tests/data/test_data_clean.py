"""Cleaning rules: blanks dropped, duplicates collapsed, conflicting labels excluded."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.data._clean import RULES, clean

# Tiny 1x2x2 images over 3 pixel values: duplicates, conflicts and blanks all happen often.
images = st.lists(
    st.tuples(st.lists(st.integers(0, 2), min_size=4, max_size=4), st.integers(0, 2)), min_size=0, max_size=60
)


def _arrays(items: list[tuple[list[int], int]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([p for p, _ in items], dtype=np.uint8).reshape(-1, 1, 2, 2)
    y = np.array([label for _, label in items], dtype=np.int64)
    return x, y


@settings(max_examples=200, deadline=None)
@given(items=images)
def test_cleaning_rules_hold(items: list[tuple[list[int], int]]) -> None:
    x, y = _arrays(items)
    keep, report = clean(x, y, [f"#{i}" for i in range(len(x))])
    labels_of: dict[bytes, set[int]] = defaultdict(set)
    for image, label in zip(x, y, strict=True):
        labels_of[image.tobytes()].add(int(label))
    kept = [x[i].tobytes() for i in keep]
    assert len(kept) == len(set(kept)), "duplicates collapse to one copy"
    assert all(len(labels_of[k]) == 1 for k in kept), "conflicting images are excluded"
    assert all(x[i].min() != x[i].max() for i in keep), "blank images are dropped"
    usable = {k for k, labels in labels_of.items() if len(labels) == 1 and len(set(k)) > 1}
    assert set(kept) == usable, "every usable image survives once"
    assert sum(report["counts"].values()) + report["kept"] == report["input"] == len(x)
    assert list(report["counts"]) == list(RULES)


def test_report_counts_and_examples() -> None:
    a, b = np.array([[1, 2], [3, 4]]), np.array([[5, 6], [7, 8]])
    x = np.stack([a, a, a, b, b, np.zeros((2, 2)), a + 10]).astype(np.uint8)[:, None]
    y = np.array([0, 0, 0, 0, 1, 0, 1])
    quarantined = [("undecodable", "bad.png", "cannot decode: truncated")]
    keep, report = clean(x, y, [f"f{i}.png" for i in range(7)], quarantined)
    assert keep.tolist() == [0, 6]
    assert report["counts"] == {
        "empty_file": 0,
        "not_an_image": 0,
        "undecodable": 1,
        "too_large": 0,
        "unreadable": 0,
        "symlink_outside": 0,
        "blank": 1,
        "conflict": 2,
        "duplicate": 2,
    }
    assert report["input"] == 8 and report["kept"] == 2
    assert [e["path"] for e in report["examples"]["conflict"]] == ["f3.png", "f4.png"]
    assert report["examples"]["undecodable"][0]["reason"] == "cannot decode: truncated"
    assert report["quarantined"] == [
        {"rule": "undecodable", "path": "bad.png", "reason": "cannot decode: truncated"}
    ]


def test_preferred_copy_is_kept_and_known_images_count() -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.uint8)[None]
    x = np.stack([a, a, a + 1])
    keep, _ = clean(x, np.array([0, 0, 1]), ["t0", "t1", "t2"], prefer=np.array([False, True, False]))
    assert keep.tolist() == [1, 2]
    from dcloop.data._clean import digest

    keep, report = clean(x, np.array([0, 0, 1]), ["t0", "t1", "t2"], known={digest(a): 1})
    assert keep.tolist() == [2]
    assert report["counts"]["conflict"] == 2


def test_switches_off_blank_and_dedupe() -> None:
    x = np.zeros((3, 1, 2, 2), dtype=np.uint8)
    keep, report = clean(x, np.zeros(3, np.int64), ["a", "b", "c"], drop_blank=False, dedupe=False)
    assert keep.tolist() == [0, 1, 2]
    assert sum(report["counts"].values()) == 0
