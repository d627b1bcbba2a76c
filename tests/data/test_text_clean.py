"""Text cleaning rules: each rule on a small case, and properties of normalisation and dedup."""

from __future__ import annotations

import unicodedata

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dcloop.data._text_clean import TEXT_RULES, clean_texts, normalize, text_digest


def _texts(items: list[str]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _clean(items: list[str], labels: list[int], **kwargs):  # type: ignore[no-untyped-def]
    names = [f"row{i}" for i in range(len(items))]
    return clean_texts(_texts(items), np.array(labels, dtype=np.int64), names, max_chars=20, **kwargs)


def test_each_rule_counts_what_it_drops() -> None:
    items = ["hello world", "  ", "", "hello   world", "same words", "same words", "a" * 30, "x"]
    labels = [0, 0, 1, 0, 0, 1, 1, 1]
    quarantined = [("undecodable", "bad.txt", "not valid UTF-8 (byte 3)")]
    keep, report = _clean(items, labels, quarantined=quarantined)
    assert keep.tolist() == [0, 6, 7]
    assert report["counts"] == dict.fromkeys(TEXT_RULES, 0) | {
        "undecodable": 1,
        "empty": 2,
        "duplicate": 1,
        "conflict": 2,
    }
    assert (report["input"], report["kept"]) == (len(items) + 1, 3)
    assert report["long"] == {"max_chars": 20, "count": 1, "examples": ["row6"]}
    assert report["examples"]["duplicate"] == [
        {"path": "row3", "reason": "same text as another example (after normalisation)"}
    ]
    assert report["quarantined"] == [
        {"rule": "undecodable", "path": "bad.txt", "reason": "not valid UTF-8 (byte 3)"}
    ]


def test_duplicates_keep_the_copy_of_the_sources_test_split() -> None:
    keep, _ = _clean(["one", "one", "two"], [0, 0, 1], prefer=np.array([False, True, False]))
    assert keep.tolist() == [1, 2]


def test_known_texts_of_a_base_version_are_duplicates_or_conflicts() -> None:
    known = {text_digest("Seen before"): 0, text_digest("Labelled 1"): 1}
    keep, report = _clean(["seen  before", "Seen before", "Labelled 1", "new"], [0, 0, 0, 1], known=known)
    assert keep.tolist() == [0, 3]  # case is not folded: "seen  before" is a new text
    assert (report["counts"]["duplicate"], report["counts"]["conflict"]) == (1, 1)


def test_dedupe_off_keeps_duplicates_but_never_conflicts() -> None:
    keep, report = _clean(["a b", "a  b", "c", "c"], [0, 0, 0, 1], dedupe=False)
    assert keep.tolist() == [0, 1] and report["counts"]["conflict"] == 2


_SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\r\n"])
_WORDS = st.lists(
    st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=6), min_size=1, max_size=6
)


@given(
    words=_WORDS, gaps=st.lists(_SPACES, min_size=7, max_size=7), form=st.sampled_from(["NFC", "NFD", "NFKD"])
)
def test_spellings_that_differ_only_in_spacing_or_unicode_form_are_one_text(
    words: list[str], gaps: list[str], form: str
) -> None:
    plain = " ".join(words)
    spaced = gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:] + [" "] * len(words), strict=False))
    variant = unicodedata.normalize(form, spaced)
    assert normalize(variant) == normalize(plain)
    keep, report = _clean([plain, variant], [0, 0])
    assert keep.tolist() == [0] and report["counts"]["duplicate"] == 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "A", "b", "a ", " b", "c\u0301", "\u0107", "d"]), st.integers(0, 2)),
        max_size=25,
    )
)
def test_cleaning_keeps_one_copy_per_text_and_no_conflicts(rows: list[tuple[str, int]]) -> None:
    items, labels = [t for t, _ in rows], [y for _, y in rows]
    keep, report = _clean(items, labels)
    kept = [normalize(items[i]) for i in keep]
    assert len(kept) == len(set(kept))  # one copy of each text
    by_text: dict[str, set[int]] = {}
    for text, label in rows:
        by_text.setdefault(normalize(text), set()).add(label)
    assert set(kept) == {t for t, seen in by_text.items() if len(seen) == 1}  # exactly the unambiguous ones
    assert report["kept"] + sum(report["counts"].values()) == report["input"] == len(rows)
    assert (keep == np.sort(keep)).all()
