"""`optimize` on a tiny text run: the same variants, measurements, records and report as images,
with the fused transformer graph beside the export, dynamic int8 of it, a layer-dropped distilled
student, and every variant folder carrying what a server needs; bad input refused whole."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dcloop.errors import ConfigError, DataError
from dcloop.optimize import list_variants, optimize

# trains a text-tiny run, then exports, fuses, quantizes and distils it: minutes on a shared CPU
pytestmark = pytest.mark.slow

WORDS = {
    "space": "rocket orbit planet comet star moon galaxy",
    "food": "bread cheese apple soup pasta salad butter",
    "music": "guitar piano drum violin song chord melody",
}
FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "with"]

CONFIG = """\
tracking:
  mlflow: false
train:
  model: text-tiny
  width: 8
  epochs: 4
  batch_size: 8
  lr: 0.003
  schedule: linear
  ema_decay: 0.0
  threads: 2
  precision: fp32
  max_length: 24
  length_buckets: 4
optimize:
  threads: 1
  distill_epochs: 1
  text_student_layers: 1
  latency_runs: 10
  throughput_batches: 1
"""


def _texts(n: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    names = list(WORDS)
    texts, labels = [], []
    for i in range(n):
        own = WORDS[names[i % 3]].split()
        words = [
            str(rng.choice(own if rng.random() < 0.5 else FILLER)) for _ in range(int(rng.integers(3, 20)))
        ]
        texts.append(" ".join(words) + f" {own[i % len(own)]} item {i}")
        labels.append(names[i % 3])
    return texts, labels


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory):
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.train import train
    from dcloop.workspace import init_workspace, open_workspace

    root = init_workspace(tmp_path_factory.mktemp("textws")).root
    (root / "dcloop.yaml").write_text(CONFIG, encoding="utf-8")
    ws = open_workspace(root, config.load(root / "dcloop.yaml"))
    path = tmp_path_factory.mktemp("csv") / "words.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(*_texts(120), strict=True))
    import_source(ws, str(path), name="words")
    run = train(ws, ws.config.train)
    return ws, run


@pytest.fixture(scope="module")
def result(text_run):
    ws, run = text_run
    return optimize(ws, run.id[:8], methods=["onnx", "int8", "distill"])


def test_text_variants_are_recorded_like_images(result, text_run) -> None:
    ws, run = text_run
    assert [v.method for v in result.variants] == ["onnx", "fused", "int8", "distill"]
    stored = {v.id for v in list_variants(ws, run=run.id)}
    assert {v.id for v in result.variants} <= stored
    assert not list((ws.artifacts_dir / "variants").glob(".staging-*"))
    for variant in result.variants:
        m = variant.metrics
        assert 0.0 <= m["accuracy"] <= 1.0 and m["test_n"] > 0 and m["latency_p50_ms"] > 0
        assert m["throughput_batch"] == 32 and m["throughput_unit"] == "text" and m["throughput_ips"] > 0
        assert m["size_bytes"] == Path(variant.onnx_path).stat().st_size and m["flops"] > 0
    assert sum(bool(v.metrics["recommended"]) for v in result.variants) == 1


def test_variant_folders_carry_tokenizer_and_spec(result, text_run) -> None:
    from tokenizers import Tokenizer

    ws, run = text_run
    run_tokenizer = Tokenizer.from_file(str(Path(run.path) / "tokenizer.json"))
    for variant in result.variants:
        folder = Path(variant.onnx_path).parent
        assert folder == ws.artifacts_dir / "variants" / variant.id
        assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx", "tokenizer.json"]
        spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        assert spec["modality"] == "text" and spec["input"]["max_length"] == 24
        assert spec["input"]["names"] == ["input_ids", "attention_mask"] and spec["classes"] == [
            "food",
            "music",
            "space",
        ]
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert tokenizer.encode("rocket soup item 7").ids == run_tokenizer.encode("rocket soup item 7").ids


def test_fused_and_int8_keep_the_exports_answers(result) -> None:
    baseline, fused, int8, student = result.variants
    assert baseline.params["parity_max_abs_diff"] <= 1e-4 and fused.params["parity_max_abs_diff"] <= 1e-4
    assert fused.parent_variant_id == baseline.id and fused.params["fusions"]["Attention"] == 2
    # a lossless rewrite: the same predictions, text by text
    assert fused.metrics["agreement"] == 1.0 and fused.metrics["accuracy_drop"] == 0.0
    assert int8.parent_variant_id == fused.id and int8.params["of"] == "fused"
    assert int8.metrics["size_bytes"] < baseline.metrics["size_bytes"] / 2
    assert student.params["layers"] == 1 and student.metrics["params"] < baseline.metrics["params"]
    assert student.metrics["flops"] < baseline.metrics["flops"]


def test_report_and_cli_name_text_throughput(result, text_run, monkeypatch) -> None:
    from dcloop.cli import app

    ws, run = text_run
    html = result.report_path.read_text(encoding="utf-8")
    assert "text/s @32" in html and "fused" in html
    monkeypatch.chdir(ws.root)
    out = CliRunner().invoke(app, ["optimize", run.id[:8], "--methods", "onnx"])
    assert out.exit_code == 0, out.output
    # the table folds its header over two lines at 80 columns
    assert "text/s" in out.stdout and "@32" in out.stdout and "fused" in out.stdout


def test_prune_asked_for_a_text_run_is_refused(text_run) -> None:
    ws, run = text_run
    before = (
        sorted((ws.artifacts_dir / "variants").iterdir()) if (ws.artifacts_dir / "variants").exists() else []
    )
    with pytest.raises(
        ConfigError, match=r"^--methods prune does not apply to text models; they take onnx, int8, distill\.$"
    ):
        optimize(ws, run.id, methods=["onnx", "prune"])
    after = (
        sorted((ws.artifacts_dir / "variants").iterdir()) if (ws.artifacts_dir / "variants").exists() else []
    )
    assert after == before


def test_tokenizer_larger_than_the_model_is_refused_and_nothing_written(text_run, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    ws, run = text_run
    tokenizer_path = Path(run.path) / "tokenizer.json"
    kept = tmp_path / "tokenizer.json"
    shutil.copy(tokenizer_path, kept)
    vocab = {f"w{i}": i for i in range(5000)} | {"[UNK]": 5000}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(tokenizer_path))
    variants = ws.artifacts_dir / "variants"
    before = sorted(variants.iterdir()) if variants.exists() else []
    count = len(list_variants(ws, run=run.id))
    try:
        with pytest.raises(
            DataError, match=r"^The tokenizer has 5001 tokens but the model's embedding has \d+ rows"
        ):
            optimize(ws, run.id, methods=["onnx"])
    finally:
        shutil.copy(kept, tokenizer_path)
    assert (sorted(variants.iterdir()) if variants.exists() else []) == before
    assert len(list_variants(ws, run=run.id)) == count
