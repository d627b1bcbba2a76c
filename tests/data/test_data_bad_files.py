"""One bad file never stops an import: a folder holding every kind of unusable file imports, each
of those files is quarantined with its reason, and the version's manifest stays valid JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from badimages import decoder_failures, encoded, png_header, saved
from datagen import write_image_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcloop.data import import_source, load_dataset
from dcloop.errors import DataError

RAW_NAME = b"bad\xff.png"  # not UTF-8: Python holds it as "bad\udcff.png"


def _bad_folder(root: Path) -> dict[str, tuple[str, str]]:
    """Good images plus one of each bad file; returns {relative path: (rule, words of the reason)}."""
    write_image_folder(root, {"cat": 6, "dog": 6})
    cat, dog = root / "cat", root / "dog"
    expected = {}
    for name, (data, raised) in decoder_failures().items():
        (cat / f"{name}.img").write_bytes(data)
        expected[f"cat/{name}.img"] = ("undecodable", raised.__name__)
    (dog / "huge.png").write_bytes(png_header(13_000, 13_000))
    expected["dog/huge.png"] = ("too_large", "must have at most 16000000 pixels. Got 13000x13000")
    os.symlink("loop.png", dog / "loop.png")
    expected["dog/loop.png"] = ("unreadable", "symlink loop")
    os.mkfifo(dog / "pipe.png")
    expected["dog/pipe.png"] = ("unreadable", "not a regular file")
    (dog / "empty.png").write_bytes(b"")
    expected["dog/empty.png"] = ("empty_file", "zero-byte file")
    (dog / "notes.txt").write_text("no image", encoding="utf-8")
    expected["dog/notes.txt"] = ("not_an_image", "not a recognised image format")
    (dog / "x[").mkdir()
    (dog / "x[" / "b].png").write_text("[/b] is no rich markup", encoding="utf-8")
    expected["dog/x[/b].png"] = ("not_an_image", "not a recognised image format")
    with open(os.fsencode(dog) + b"/" + RAW_NAME, "wb") as file:  # damaged, under a non-UTF-8 name
        file.write(saved("PNG")[:60])
    expected["dog/bad\\xff.png"] = ("undecodable", "PNG image cannot be decoded")
    with open(os.fsencode(cat) + b"/ok\xfe.png", "wb") as file:  # fine, under a non-UTF-8 name
        file.write(saved("PNG", seed=42))
    return expected


def _check_quarantine(cleaning: dict, expected: dict[str, tuple[str, str]]) -> None:
    found = {item["path"]: (item["rule"], item["reason"]) for item in cleaning["quarantined"]}
    assert set(found) == set(expected)
    for path, (rule, words) in expected.items():
        assert found[path][0] == rule and words in found[path][1], (path, found[path])
        assert "\n" not in found[path][1]


def test_every_bad_file_is_quarantined_and_the_import_finishes(workspace, tmp_path: Path) -> None:
    expected = _bad_folder(tmp_path / "pets")
    record = import_source(workspace, str(tmp_path / "pets"))
    assert record.cleaning["kept"] == 13  # 12 generated images and ok\xfe.png
    _check_quarantine(record.cleaning, expected)
    manifest = json.loads((Path(record.path) / "manifest.json").read_text(encoding="utf-8"))
    _check_quarantine(manifest["cleaning"], expected)
    assert load_dataset(workspace, record.id).x.shape == (13, 1, 28, 28)


def test_the_cli_imports_a_folder_of_bad_files(workspace, tmp_path: Path) -> None:
    _bad_folder(tmp_path / "pets")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "data", "import", str(tmp_path / "pets"), "--format", "json"],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    summary = json.loads(result.stdout)
    counts = summary["cleaning"]
    assert (counts["undecodable"], counts["too_large"], counts["unreadable"]) == (5, 1, 2)
    assert (counts["empty_file"], counts["not_an_image"]) == (1, 2)
    assert sum(summary["counts"].values()) == 13
    table = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "data", "show", summary["version"]],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},  # one row per file, nothing folded
    )
    assert table.returncode == 0, table.stderr
    for path in ("dog/bad\\xff.png", "dog/x[/b].png", "cat/dds.img", "dog/loop.png"):
        assert path in table.stdout
    assert "symlink loop" in table.stdout and "NotImplementedError" in table.stdout


def test_a_source_folder_whose_own_name_is_not_utf8_is_a_one_line_error(workspace, tmp_path: Path) -> None:
    root = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9")  # a Latin-1 folder name
    write_image_folder(Path(root), {"a": 4, "b": 4})
    with pytest.raises(
        DataError, match=r"Source path .*/caf\\xe9 must be valid UTF-8 to be recorded; rename it"
    ):
        import_source(workspace, root, name="cafe")


def test_sixteen_bit_images_import_with_their_levels(workspace, tmp_path: Path) -> None:
    ramps = {
        name: (np.arange(28 * 28, dtype=np.uint32) * (40 + k)).astype(np.uint16).reshape(28, 28)
        for k, name in enumerate(("a", "b"))
    }
    for name, ramp in ramps.items():
        (tmp_path / "deep" / name).mkdir(parents=True)
        (tmp_path / "deep" / name / "ramp.png").write_bytes(encoded(ramp))
        (tmp_path / "deep" / name / "flipped.png").write_bytes(encoded(ramp[::-1].copy()))
    data = load_dataset(workspace, import_source(workspace, str(tmp_path / "deep")).id)
    assert data.x.shape == (4, 1, 28, 28)
    expected = {np.floor(ramp / 257 + 0.5).astype(np.uint8).tobytes() for ramp in ramps.values()}
    assert expected <= {image[0].tobytes() for image in np.asarray(data.x)}
    assert all(len(np.unique(image)) > 100 for image in np.asarray(data.x))  # not two levels


def test_a_smaller_pixel_budget_from_the_config(workspace, tmp_path: Path) -> None:
    from dcloop.config import with_overrides
    from dcloop.workspace import Workspace

    ws = Workspace(workspace.root, with_overrides(workspace.config, "data", {"max_image_pixels": 100}))
    root = write_image_folder(tmp_path / "sizes", {"a": 3, "b": 3}, size=8)  # 64 pixels each
    (root / "a" / "big.png").write_bytes(saved("PNG", size=11))  # 121 pixels
    record = import_source(ws, str(root))
    assert record.cleaning["quarantined"] == [
        {
            "rule": "too_large",
            "path": "a/big.png",
            "reason": "must have at most 100 pixels. Got 11x11; raise data.max_image_pixels to import it",
        }
    ]


@settings(max_examples=25)
@given(
    names=st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=6, unique=True),
    damaged=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_any_file_name_bytes_import(tmp_path_factory, names: list[bytes], damaged: list[bool]) -> None:
    from dcloop.workspace import init_workspace

    workspace = init_workspace(tmp_path_factory.mktemp("ws"))  # fresh: versions of equal content merge
    root = tmp_path_factory.mktemp("names")
    write_image_folder(root, {"a": 3, "b": 3})
    written: dict[bytes, bool] = {}
    for i, raw in enumerate(names):
        name = b"f" + raw.replace(b"/", b"_").replace(b"\x00", b"_") + b".png"  # "f": never hidden
        written[name] = damaged[i]
        with open(os.fsencode(root / "a") + b"/" + name, "wb") as file:
            file.write(saved("PNG", seed=100 + i)[: 50 if damaged[i] else None])
    record = import_source(workspace, str(root))
    quarantined = record.cleaning["quarantined"]
    assert len(quarantined) == sum(written.values()) and record.cleaning["kept"] == 6 + len(written) - len(
        quarantined
    )
    shown = {name.decode("utf-8", "backslashreplace") for name, bad in written.items() if bad}
    assert {item["path"] for item in quarantined} == {f"a/{name}" for name in shown}
    json.loads((Path(record.path) / "manifest.json").read_text(encoding="utf-8"))


def test_npz_whose_members_are_not_npy_is_a_one_line_error(workspace, tmp_path: Path) -> None:
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x", b"not an array")
        archive.writestr("y", b"not an array either")
    with pytest.raises(
        DataError, match=r"raw.npz: member 'x' must be a .npy array. Got a file that is not .npy."
    ):
        import_source(workspace, str(path))
    np.savez(tmp_path / "scalar.npz", x=np.uint8(3), y=np.arange(2))
    with pytest.raises(DataError, match=r"scalar.npz: 'x' must be an array with one entry per example"):
        import_source(workspace, str(tmp_path / "scalar.npz"))


@settings(max_examples=200)
@given(header=st.binary(max_size=3).map(lambda b: b"\x00\x00\x08" + b), rest=st.binary(max_size=64))
def test_any_idx_bytes_read_or_give_a_data_error(tmp_path_factory, header: bytes, rest: bytes) -> None:
    from dcloop.data._sources import read_idx

    path = tmp_path_factory.mktemp("idx") / "x-images-idx3-ubyte"
    path.write_bytes(header[:4] + rest)
    try:
        array = read_idx(path)
    except DataError as error:
        assert "\n" not in str(error) and str(path) in str(error)
    else:
        assert array.dtype == np.uint8 and array.size == len(header[:4] + rest) - 4 - 4 * array.ndim


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    members=st.dictionaries(st.sampled_from(["x", "y", "classes", "x.npy", "y.npy"]), st.binary(max_size=40))
)
def test_any_npz_members_give_a_data_error(workspace, tmp_path_factory, members: dict[str, bytes]) -> None:
    # every example fails before anything is stored, so they all share one workspace
    root = tmp_path_factory.mktemp("npz")
    with zipfile.ZipFile(root / "any.npz", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(DataError) as caught:
        import_source(workspace, str(root / "any.npz"))
    assert "\n" not in str(caught.value) and "any.npz" in str(caught.value)
