"""Text versions at rest: content-addressed ids, the files of a version, extending one with feedback,
and `dcloop data` on text sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dcloop.cli import app
from dcloop.data import extend_dataset, import_source, load_dataset
from dcloop.data._persist import pack_texts, unpack_texts
from dcloop.errors import DataError
from dcloop.workspace import init_workspace

runner = CliRunner()
ROWS = [
    (f"note {i}: {'buy milk' if i % 2 else 'fix bug'} #{i}", "home" if i % 2 else "work") for i in range(30)
]


def _csv(path: Path, rows: list[tuple[str, str]] = ROWS) -> Path:
    path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    return path


@settings(max_examples=50)
@given(st.lists(st.text(max_size=12), max_size=12))
def test_packed_texts_round_trip(texts: list[str]) -> None:
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    blob, offsets = pack_texts(array)
    assert offsets.dtype == np.int64 and offsets.shape == (len(texts) + 1,) and offsets[-1] == len(blob)
    assert unpack_texts(blob, offsets).tolist() == texts


def test_same_input_gives_the_same_id_in_two_workspaces(tmp_path: Path) -> None:
    source = _csv(tmp_path / "notes.csv")
    first = import_source(init_workspace(tmp_path / "a"), str(source))
    second = import_source(init_workspace(tmp_path / "b"), str(source))
    assert first.id == second.id
    changed = _csv(tmp_path / "changed.csv", [*ROWS[:-1], (ROWS[-1][0] + "!", ROWS[-1][1])])
    assert import_source(init_workspace(tmp_path / "c"), str(changed)).id != first.id


def test_version_files_manifest_and_dataset_api(workspace, tmp_path: Path) -> None:
    record = import_source(workspace, str(_csv(tmp_path / "notes.csv")))
    folder = Path(record.path)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "offsets.npy",
        "splits.npz",
        "text.bin",
        "y.npy",
    ]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["modality"], manifest["id"], manifest["num_examples"]) == ("text", record.id, 30)
    offsets = np.load(folder / "offsets.npy")
    assert offsets.dtype == np.int64 and offsets[-1] == (folder / "text.bin").stat().st_size
    dataset = load_dataset(workspace, record.id)
    assert dataset.modality == "text" and dataset.x.dtype == object and dataset.x.shape == (30,)
    texts, labels = dataset.arrays("train")
    assert labels.dtype == np.int64 and len(texts) == len(dataset.splits["train"])
    assert {(t, dataset.classes[y]) for t, y in zip(dataset.x, dataset.y, strict=True)} == set(ROWS)
    with pytest.raises(DataError, match=r"holds text, not images"):
        _ = dataset.image_shape


def test_extend_a_text_version_with_feedback(workspace, tmp_path: Path) -> None:
    base = load_dataset(workspace, import_source(workspace, str(_csv(tmp_path / "notes.csv"))).id)
    home, work = base.classes.index("home"), base.classes.index("work")
    texts = ["call mum", "deploy the fix", ROWS[1][0], "  " + ROWS[2][0], "call  mum", ROWS[3][0]]
    labels = np.array([home, work, home, home, home, work])  # ROWS[1] is home, ROWS[2] work, ROWS[3] home
    record = extend_dataset(workspace, base.id, texts, labels, {"kind": "labels", "count": 6})
    grown = load_dataset(workspace, record.id)
    assert record.parent_id == base.id and record.modality == "text"
    assert grown.x[: len(base.x)].tolist() == base.x.tolist()  # the base is kept in place
    assert grown.x[len(base.x) :].tolist() == ["call mum", "deploy the fix"]
    assert np.array_equal(grown.splits["test"], base.splits["test"])  # test is frozen
    added = record.cleaning["added"]["counts"]
    assert (added["duplicate"], added["conflict"]) == (2, 2)  # base text or repeat; relabelled base text
    again = extend_dataset(workspace, record.id, ["call mum"], np.array([home]), {})
    assert again.id == record.id  # nothing new survives: the content is the base's
    with pytest.raises(DataError, match=r"texts must be a list or 1-D array of strings"):
        extend_dataset(workspace, base.id, np.zeros((2, 28, 28), np.uint8), np.array([0, 1]), {})
    with pytest.raises(DataError, match=r"labels must lie in 0..1"):
        extend_dataset(workspace, base.id, ["new one"], np.array([2]), {})


def test_cli_import_show_and_list(workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(workspace.root)
    path = tmp_path / "reviews.csv"
    path.write_text(
        "body,stars\n" + "".join(f"review {i},{'Good' if i % 2 else 'bad '}\n" for i in range(12)),
        encoding="utf-8",
    )
    args = [
        "data",
        "import",
        str(path),
        "--text-column",
        "body",
        "--label-column",
        "stars",
        "--format",
        "json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["modality"], shown["classes"], shown["shape"]) == ("text", ["Good", "bad"], [])
    table = runner.invoke(app, ["data", "show", shown["short_id"]])
    assert table.exit_code == 0 and "modality" in table.output and "text" in table.output
    listed = runner.invoke(app, ["data", "list", "--format", "json"])
    assert [v["modality"] for v in json.loads(listed.output)] == ["text"]


def test_cli_bad_column_is_one_line_and_nonzero(workspace, tmp_path: Path) -> None:
    path = _csv(tmp_path / "notes.csv")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "data", "import", str(path), "--label-column", "lable"],
        cwd=workspace.root,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "has no column 'lable'" in result.stderr and "Did you mean 'label'?" in result.stderr
