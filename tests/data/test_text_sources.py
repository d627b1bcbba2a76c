"""Text sources on real files the tests write: CSV, TSV, JSONL, Parquet, .txt folders and the real
fortunes package; every bad input is one DataError naming the file and the line or field."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.data import import_source, list_datasets, load_dataset, prepare_dataset
from dcloop.data._text_clean import normalize
from dcloop.errors import DataError
from dcloop.workspace import init_workspace

ROWS = [
    (f"text number {i} about {'cats' if i % 2 else 'dogs'}", "cat" if i % 2 else "dog") for i in range(20)
]


def _csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label", sep: str = ",") -> Path:
    lines = [header] + [
        sep.join(f'"{t}"' if sep == "," else t for t in (text, label)) for text, label in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _texts_by_label(workspace, ref: str) -> dict[str, set[str]]:
    dataset = load_dataset(workspace, ref)
    found: dict[str, set[str]] = {c: set() for c in dataset.classes}
    for text, label in zip(dataset.x, dataset.y, strict=True):
        found[dataset.classes[label]].add(text)
    return found


def _expected(rows: list[tuple[str, str]]) -> dict[str, set[str]]:
    return {label: {t for t, lab in rows if lab == label} for label in sorted({lab for _, lab in rows})}


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet"])
def test_every_table_kind_reads_the_same_examples(workspace, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"pets.{kind}"
    if kind == "csv":
        _csv(path, ROWS)
    elif kind == "tsv":
        _csv(path, ROWS, "text\tlabel", "\t")
    elif kind == "jsonl":
        path.write_text(
            "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in ROWS), encoding="utf-8"
        )
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": [t for t, _ in ROWS], "label": [lab for _, lab in ROWS]}), path)
    record = import_source(workspace, str(path))
    assert (record.name, record.modality, record.shape, record.classes) == (
        "pets",
        "text",
        [],
        ["cat", "dog"],
    )
    assert record.source["kind"] == kind and record.source["text_column"] == "text"
    assert sum(sum(c.values()) for c in record.counts.values()) == len(ROWS)
    assert _texts_by_label(workspace, record.id) == _expected(ROWS)


def test_columns_named_by_flags_are_recorded_for_prepare(workspace, tmp_path: Path) -> None:
    path = _csv(tmp_path / "reviews.csv", ROWS, header="review,sentiment")
    record = import_source(workspace, str(path), text_column="review", label_column="sentiment")
    assert record.source["label_column"] == "sentiment"
    assert prepare_dataset(workspace, "reviews").id == record.id  # read again with the recorded columns


def test_text_folder_keeps_its_train_and_test_split(workspace, tmp_path: Path) -> None:
    root = tmp_path / "notes"
    written: dict[str, dict[str, str]] = {"train": {}, "test": {}}
    for split, n in (("train", 8), ("test", 3)):
        for label in ("ham", "spam"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                text = f"{split} {label} message {i}"
                (root / split / label / f"{i}.txt").write_text(text, encoding="utf-8")
                written[split][text] = label
    record = import_source(workspace, str(root))
    dataset = load_dataset(workspace, record.id)
    assert record.source["kind"] == "text-folder" and dataset.modality == "text"
    test_texts, test_labels = dataset.arrays("test")
    assert {t: dataset.classes[y] for t, y in zip(test_texts, test_labels, strict=True)} == written["test"]
    rest = np.concatenate([dataset.splits["train"], dataset.splits["val"]])
    assert set(dataset.x[rest]) == set(written["train"])


def test_text_folder_quarantines_undecodable_and_foreign_files(workspace, tmp_path: Path) -> None:
    root = tmp_path / "mail"
    for label in ("ham", "spam"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            (root / label / f"{i}.txt").write_text(f"{label} {i}", encoding="utf-8")
    (root / "ham" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "spam" / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    record = import_source(workspace, str(root))
    quarantined = {(q["rule"], q["path"]): q["reason"] for q in record.cleaning["quarantined"]}
    assert quarantined == {
        ("undecodable", "ham/latin1.txt"): "not valid UTF-8 (byte 3)",
        ("not_text", "spam/picture.png"): "not a .text/.txt file",
    }
    assert sum(sum(c.values()) for c in record.counts.values()) == 8


def test_label_spelling_variants_are_one_class_and_reported(workspace, tmp_path: Path) -> None:
    rows = [("good one", "Positive"), ("great", "positive "), ("fine", "positive"), ("bad", "negative")]
    rows += [("awful", "NEGATIVE"), ("poor", "negative")]
    record = import_source(workspace, str(_csv(tmp_path / "s.csv", rows)))
    assert record.classes == ["negative", "positive"]
    assert record.cleaning["label_variants"] == {
        "positive": ["Positive", "positive", "positive "],
        "negative": ["NEGATIVE", "negative"],
    }
    picked = import_source(workspace, str(tmp_path / "s.csv"), name="s2", classes="POSITIVE ,Negative")
    assert picked.id == record.id  # any spelling of a label selects its class


def test_rows_without_label_and_undecodable_rows_are_quarantined(workspace, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    body = (
        b"text,label\nhello there,a\nno label here,\nbye now,b\n\xff\xfe broken,a\nagain hi,a\nagain bye,b\n"
    )
    path.write_bytes(body)
    record = import_source(workspace, str(path))
    assert [(q["rule"], q["path"]) for q in record.cleaning["quarantined"]] == [
        ("undecodable", "mixed.csv:5"),
        ("missing_label", "mixed.csv:3"),
    ]
    assert record.cleaning["counts"]["undecodable"] == 1 and record.cleaning["counts"]["missing_label"] == 1


def test_parquet_null_and_nan_labels_are_missing(workspace, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [1.0, 2.0, None, float("nan"), 1.0, 2.0]
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(6)], "label": labels}), tmp_path / "n.parquet")
    record = import_source(workspace, str(tmp_path / "n.parquet"))
    assert record.classes == ["1.0", "2.0"]
    assert [(q["rule"], q["path"]) for q in record.cleaning["quarantined"]] == [
        ("missing_label", "n.parquet:3"),
        ("missing_label", "n.parquet:4"),
    ]


def test_jsonl_undecodable_line_is_quarantined(workspace, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}).encode() for i in range(6)]
    lines.insert(2, b'{"text": "caf\xe9", "label": "a"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    record = import_source(workspace, str(path))
    assert record.cleaning["quarantined"] == [
        {"rule": "undecodable", "path": "t.jsonl:3", "reason": "not valid UTF-8 (byte 13)"}
    ]


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        (
            "a.csv",
            "txt,label\nx,a\ny,b\n",
            {},
            r"a.csv has no column 'text' .*--text-column.*Did you mean 'txt'",
        ),
        (
            "b.csv",
            "text,label\nx,a\ny,b\n",
            {"label_column": "lbl"},
            r"no column 'lbl'.*Did you mean 'label'",
        ),
        ("c.csv", "text,label\nx,\ny,\n", {}, r"c.csv: 'label' is empty in every row"),
        (
            "d.csv",
            "text,label\nx,a\ny,a\n",
            {},
            r"d.csv \('label'\) must hold at least 2 classes .* Found only 'a'",
        ),
        (
            "e.csv",
            "text,label\nx,a\ny,b,extra\nz,b\n",
            {},
            r"e.csv line 3: expected 2 fields like the header, got 3",
        ),
        ("f.csv", 'text,label\n"x"y,a\n', {}, r"f.csv line 2: not valid CSV"),
        ("g.csv", "", {}, r"g.csv is empty; expected a header row"),
        ("h.jsonl", '{"text": "x", "label": "a"}\n{"text": "y", \n', {}, r"h.jsonl line 2: not valid JSON"),
        (
            "i.jsonl",
            '{"text": 5, "label": "a"}\n',
            {},
            r"i.jsonl line 1: field 'text' must be a string. Got int",
        ),
        ("j.jsonl", '{"txt": "x", "label": "a"}\n', {}, r"j.jsonl line 1: no field 'text'.*Did you mean"),
        ("k.jsonl", '["x", "a"]\n', {}, r"k.jsonl line 1: expected a JSON object. Got list"),
        ("l.parquet", "not parquet", {}, r"l.parquet is not a readable Parquet file"),
    ],
)
def test_bad_tables_are_one_line_errors_and_store_nothing(
    workspace, tmp_path: Path, name: str, content: str, kwargs: dict[str, str], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as raised:
        import_source(workspace, str(path), **kwargs)
    assert "\n" not in str(raised.value)
    assert list_datasets(workspace) == []
    assert not workspace.datasets_dir.exists() or not any(workspace.datasets_dir.iterdir())


def test_column_flags_on_an_image_source_are_refused(workspace, pets: Path) -> None:
    with pytest.raises(DataError, match=r"--text-column and --label-column apply to text sources"):
        import_source(workspace, str(pets), text_column="body")


def test_fortunes_from_the_debian_package(workspace) -> None:
    """The real package: the default five categories, entries split on '%' lines, provenance recorded."""
    from dcloop.data._fortunes import DEFAULT_CLASSES, FORTUNES_DIR, entries

    if not FORTUNES_DIR.is_dir():
        pytest.skip("Debian's fortunes package is not installed here (make installs it)")
    record = import_source(workspace, "fortunes")
    assert record.classes == list(DEFAULT_CLASSES) and record.modality == "text"
    offered = {c: len(entries((FORTUNES_DIR / c).read_bytes())) for c in DEFAULT_CLASSES}
    kept = {c: sum(record.counts[s][c] for s in record.counts) for c in DEFAULT_CLASSES}
    dropped = record.cleaning["counts"]
    assert (
        sum(offered.values()) - sum(kept.values())
        == dropped["conflict"] + dropped["duplicate"] + dropped["empty"]
    )
    assert all(kept[c] >= 0.95 * offered[c] for c in DEFAULT_CLASSES)
    assert record.source["package"].startswith("fortunes==") and "BSD" in record.source["license"]
    texts = load_dataset(workspace, record.id).x
    assert not any("\x08" in t for t in texts) and not any(t.strip() == "%" for t in texts)
    assert any("Calm down, it's *only* ones and zeroes." in t for t in texts)  # overstrike resolved


def test_fortunes_classes_and_missing_package(
    workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dcloop.data import _fortunes

    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "cats").write_text("Cats rule.\n%\nA cat\tnaps.\n\t\t-- Someone\n%\n", encoding="utf-8")
    (folder / "cats.dat").write_bytes(b"\0" * 8)
    (folder / "dogs").write_text("Dogs drool.\n%\nA d_\bo_\bg barks.\n%\n", encoding="utf-8")
    (folder / "off").mkdir()
    (folder / "off" / "rude").write_text("rude\n%\n", encoding="utf-8")
    monkeypatch.setattr(_fortunes, "FORTUNES_DIR", folder)
    record = import_source(workspace, "fortunes", classes="cats,dogs")
    dataset = load_dataset(workspace, record.id)
    assert record.name == "fortunes-cats-dogs" and record.classes == ["cats", "dogs"]
    assert sorted(dataset.x) == ["A cat\tnaps.\n\t\t-- Someone", "A dog barks.", "Cats rule.", "Dogs drool."]
    with pytest.raises(DataError, match=r"Unknown class 'rude' in fortunes. Known: cats, dogs"):
        import_source(workspace, "fortunes", classes="cats,rude")
    monkeypatch.setattr(_fortunes, "FORTUNES_DIR", tmp_path / "nowhere")
    with pytest.raises(
        DataError, match=r"^Source 'fortunes' needs Debian's fortunes package: apt-get install fortunes.$"
    ):
        import_source(workspace, "fortunes")


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=12)
@given(
    kind=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]),
    texts=st.lists(_TEXT.filter(lambda t: t.strip()), min_size=2, max_size=12, unique_by=normalize),
)
def test_any_texts_survive_every_table_kind_unchanged(kind: str, texts: list[str]) -> None:
    """Commas, quotes, tabs, newlines and any Unicode in a text come back exactly as written."""
    rows = [(text, "ab"[i % 2]) for i, text in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"any.{kind}"
        if kind in {"csv", "tsv"}:
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter="," if kind == "csv" else "\t")
                writer.writerows([("text", "label"), *rows])
        elif kind == "jsonl":
            path.write_text(
                "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8"
            )
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"text": texts, "label": [y for _, y in rows]}), path)
        workspace = init_workspace(Path(tmp) / "ws")
        record = import_source(workspace, str(path))
        assert record.cleaning["kept"] == len(rows)
        assert _texts_by_label(workspace, record.id) == _expected(rows)
