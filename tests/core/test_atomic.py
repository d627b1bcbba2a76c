"""The one temporary-then-rename write path: complete or untouched, never half-written, nothing left over."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.atomic import copy_file, replacing, replacing_dir, write_text


@settings(max_examples=30, deadline=None)
@given(old=st.text(max_size=200), new=st.text(max_size=200))
def test_write_text_replaces_whole_content(
    tmp_path_factory: pytest.TempPathFactory, old: str, new: str
) -> None:
    folder = tmp_path_factory.mktemp("w")
    target = folder / "sub" / "config.yaml"
    write_text(target, old)
    assert write_text(target, new) == target
    assert target.read_bytes().decode("utf-8") == new  # read_text would translate "\r" to "\n"
    assert [p.name for p in folder.rglob("*")] == ["sub", "config.yaml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="export failed"), replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".onnx"  # writers that read the suffix see it
        tmp.write_bytes(b"half")
        raise RuntimeError("export failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_replacing_dir_publishes_a_complete_folder_or_nothing(tmp_path: Path) -> None:
    final = tmp_path / "epoch-0001"
    with pytest.raises(OSError), replacing_dir(final) as staging:
        (staging / "weights.safetensors").write_bytes(b"w")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
    with replacing_dir(final) as staging:
        (staging / "weights.safetensors").write_bytes(b"w")
        assert not final.exists()
    assert [p.name for p in final.iterdir()] == ["weights.safetensors"]


def test_two_writers_get_different_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "latest"
    with replacing(target) as first, replacing(target) as second:
        assert first != second
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the outer block renames last


def test_copy_file(tmp_path: Path) -> None:
    source = tmp_path / "a.onnx"
    source.write_bytes(b"\x00\x01" * 1000)
    target = copy_file(source, tmp_path / "models" / "b.onnx")
    assert target.read_bytes() == source.read_bytes()
