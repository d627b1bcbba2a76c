"""Folder, IDX and .npz sources on small data sets generated here, with the bad inputs users hand us."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from datagen import random_images, write_idx, write_image_folder
from PIL import Image

from dcloop.data import import_source, list_sources, load_dataset
from dcloop.errors import DataError, NotFoundError


def test_list_sources_names_every_kind() -> None:
    assert list_sources() == [
        "animal-mnist",
        "csv",
        "folder",
        "fortunes",
        "idx",
        "jsonl",
        "npz",
        "parquet",
        "text-folder",
        "tsv",
    ]


def test_folder_source_is_decoded_converted_and_split(workspace, pets: Path) -> None:
    record = import_source(workspace, str(pets))
    assert record.name == "pets"
    assert record.classes == ["cat", "dog", "owl"]
    assert record.shape == [1, 28, 28]  # resized to data.image_size
    assert {split: sum(c.values()) for split, c in record.counts.items()} == {
        "train": 21,
        "val": 3,
        "test": 6,
    }
    data = load_dataset(workspace, record.id)
    assert data.x.dtype == np.uint8 and data.x.shape == (30, 1, 28, 28)


def test_folder_keeps_its_own_train_test_split(workspace, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "set" / "train", {"a": 8, "b": 8}, seed=1)
    write_image_folder(tmp_path / "set" / "val", {"a": 1, "b": 1}, seed=3)
    write_image_folder(tmp_path / "set" / "test", {"a": 3, "b": 2}, seed=2)
    (tmp_path / "set" / "__MACOSX" / "a").mkdir(parents=True)
    (tmp_path / "set" / "train" / "a" / ".DS_Store").write_bytes(b"\x00\x00")
    record = import_source(workspace, str(tmp_path / "set"))
    assert record.classes == ["a", "b"]
    assert record.counts["test"] == {"a": 3, "b": 2}
    assert sum(record.counts["train"].values()) + sum(record.counts["val"].values()) == 18
    assert record.cleaning["counts"]["not_an_image"] == 0  # hidden files are not inputs


def test_a_train_folder_alone_is_a_split_layout(workspace, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "data" / "train", {"cat": 5, "dog": 5})
    record = import_source(workspace, str(tmp_path / "data"))
    assert record.classes == ["cat", "dog"]
    again = import_source(workspace, str(tmp_path / "data" / "train"))
    assert again.id == record.id  # same content, same version, under its first name
    assert load_dataset(workspace, "data-train").id == record.id  # the second name resolves to it


def test_bad_files_are_quarantined_and_import_goes_on(workspace, pets: Path, tmp_path: Path) -> None:
    good = (pets / "cat" / "0.png").read_bytes()
    (pets / "cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[40:60] = b"\x00" * 20
    (pets / "dog" / "corrupt.png").write_bytes(bytes(corrupt))
    (pets / "dog" / "notes.txt").write_text("not an image", encoding="utf-8")
    (pets / "owl" / "empty.png").write_bytes(b"")
    Image.fromarray(random_images(1, seed=9)[0]).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", pets / "owl" / "link.png")
    os.symlink(pets / "owl" / "0.png", pets / "owl" / "inside.png")  # a link inside the folder is fine
    os.symlink(tmp_path, pets / "owl" / "escape", target_is_directory=True)
    record = import_source(workspace, str(pets))
    counts = record.cleaning["counts"]
    assert counts["undecodable"] == 2
    assert counts["not_an_image"] == 1
    assert counts["empty_file"] == 1
    assert counts["symlink_outside"] == 2
    assert counts["duplicate"] == 1  # inside.png has 0.png's pixels
    assert record.cleaning["kept"] == 30
    paths = {e["path"] for rule in record.cleaning["examples"].values() for e in rule}
    assert {
        "owl/link.png",
        "owl/escape",
        "cat/truncated.png",
        "dog/corrupt.png",
        "dog/notes.txt",
        "owl/empty.png",
    } <= paths


def test_non_ascii_paths_work(workspace, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "données", {"chat_é": 4, "chien": 4})
    Image.fromarray(random_images(1, seed=7)[0]).save(root / "chat_é" / "ünïcode.png")
    record = import_source(workspace, str(root))
    assert record.name == "données"
    assert record.classes == ["chat_é", "chien"]
    assert sum(record.counts[s]["chat_é"] for s in record.counts) == 5


def test_colour_and_size_follow_the_config(workspace, tmp_path: Path) -> None:
    from dcloop.config import with_overrides
    from dcloop.workspace import Workspace

    ws = Workspace(
        workspace.root, with_overrides(workspace.config, "data", {"color": "rgb", "image_size": 12})
    )
    root = tmp_path / "rgb"
    for k, name in enumerate(["r", "g"]):
        (root / name).mkdir(parents=True)
        for i, pixels in enumerate(random_images(3, size=20, seed=k, channels=3)):
            Image.fromarray(pixels).save(root / name / f"{i}.jpg" if i else root / name / f"{i}.bmp")
    data = load_dataset(ws, import_source(ws, str(root)).id)
    assert data.image_shape == (3, 12, 12)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_pair_and_folder(workspace, tmp_path: Path, compress: bool) -> None:
    suffix = ".gz" if compress else ""
    tmp_path = tmp_path / "mnist"
    tmp_path.mkdir()
    x, y = random_images(40, size=10), np.tile(np.array([3, 7]), 20)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x[:30], compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y[:30], compress)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", x[30:], compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", y[30:], compress)
    one = import_source(workspace, str(tmp_path / f"train-images-idx3-ubyte{suffix}"))
    assert one.name == "mnist-train" and one.classes == ["3", "7"]
    assert sum(sum(c.values()) for c in one.counts.values()) == 30
    both = import_source(workspace, str(tmp_path))
    assert both.name == "mnist"
    assert both.counts["test"] == {"3": 5, "7": 5}  # t10k files are the source's own test split


def test_idx_errors(workspace, tmp_path: Path) -> None:
    write_idx(tmp_path / "a-images-idx3-ubyte", random_images(4))
    with pytest.raises(DataError, match=r"needs its labels file .*a-labels-idx1-ubyte, which is missing"):
        import_source(workspace, str(tmp_path / "a-images-idx3-ubyte"))
    (tmp_path / "b-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03junk")
    (tmp_path / "b-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match=r"b-images-idx3-ubyte is not an IDX file of unsigned bytes"):
        import_source(workspace, str(tmp_path / "b-images-idx3-ubyte"))


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts_and_class_names(workspace, tmp_path: Path, layout: str) -> None:
    x = random_images(20, size=28, channels=1 if layout == "NHW" else 3)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    path = tmp_path / "arrays.npz"
    np.savez(path, x=x, y=np.arange(20) % 2, classes=np.array(["cat", "dog"]))
    record = import_source(workspace, str(path), classes=["dog", "cat"])
    assert record.classes == ["cat", "dog"] and record.shape == [1, 28, 28]
    assert sum(sum(c.values()) for c in record.counts.values()) == 20


def test_npz_errors(workspace, tmp_path: Path) -> None:
    np.savez(tmp_path / "nox.npz", images=random_images(4), y=np.zeros(4, int))
    with pytest.raises(DataError, match=r"nox.npz must hold arrays 'x' .* Missing: x; found: images, y"):
        import_source(workspace, str(tmp_path / "nox.npz"))
    np.savez(tmp_path / "short.npz", x=random_images(4), y=np.zeros(3, int))
    with pytest.raises(DataError, match=r"short.npz: 'x' and 'y' must have the same length. Got 4 and 3"):
        import_source(workspace, str(tmp_path / "short.npz"))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"garbage.npz is not a readable .npz file"):
        import_source(workspace, str(tmp_path / "garbage.npz"))
    np.savez(tmp_path / "float.npz", x=np.zeros((4, 8, 8), np.float32), y=np.arange(4))
    with pytest.raises(DataError, match=r"images must be uint8. Got float32"):
        import_source(workspace, str(tmp_path / "float.npz"))


def test_bad_paths_and_names(workspace, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Source path .*missing does not exist"):
        import_source(workspace, str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"Unknown data source 'animal-mnsit'.*Did you mean 'animal-mnist'"):
        import_source(workspace, "animal-mnsit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"Source folder .*empty is empty. Expected"):
        import_source(workspace, str(tmp_path / "empty"))
    (tmp_path / "flat").mkdir()
    Image.fromarray(random_images(1)[0]).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"flat has no class sub-folders"):
        import_source(workspace, str(tmp_path / "flat"))
    (tmp_path / "notes.xlsx").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes.xlsx is not a kind dcloop reads"):
        import_source(workspace, str(tmp_path / "notes.xlsx"))
    os.symlink(tmp_path / "gone", tmp_path / "broken")
    with pytest.raises(DataError, match=r"broken is a broken symlink"):
        import_source(workspace, str(tmp_path / "broken"))


def test_single_class_and_unknown_class(workspace, tmp_path: Path, pets: Path) -> None:
    one = write_image_folder(tmp_path / "one", {"cat": 5})
    with pytest.raises(DataError, match=r"one must hold at least 2 classes .* Found only 'cat'"):
        import_source(workspace, str(one))
    with pytest.raises(DataError, match=r"Unknown class 'dgo' .* Known: cat, dog, owl. Did you mean 'dog'"):
        import_source(workspace, str(pets), classes="cat,dgo")
    with pytest.raises(NotFoundError):
        load_dataset(workspace)  # nothing was half-recorded
    assert not [p for p in workspace.datasets_dir.iterdir()]


def test_all_images_blank_is_an_error(workspace, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "blank" / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "blank" / name / "x.png")
    with pytest.raises(DataError, match=r"leaves 0 usable images .* \(dropped: blank 2\)"):
        import_source(workspace, str(tmp_path / "blank"))


def test_unreadable_path(workspace, tmp_path: Path) -> None:
    # A unix socket cannot be opened for reading by anyone, root included (chmod 0 would not stop root).
    path = tmp_path / "locked.npz"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        with pytest.raises(DataError, match=r"locked.npz is not a readable .npz file"):
            import_source(workspace, str(path))
    finally:
        server.close()
