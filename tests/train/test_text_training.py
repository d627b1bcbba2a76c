"""Training text models through the same loop and run records as images: dynamic padding in
length buckets, exact resume, gradient accumulation, encoder freezing, layer-wise lr decay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.errors import ConfigError, DataError
from dcloop.store import runs as store_runs
from dcloop.train import create_model, evaluate, fit_model, load_trained, predict_texts, text_tokenizer, train
from dcloop.train._batches import length_buckets
from dcloop.train._recipe import build_optimizer
from dcloop.train._text_recipe import resolve_recipe


class Killed(Exception):
    pass


def _recipe(**kw: object) -> TrainConfig:
    base = {
        "model": "text-tiny",
        "epochs": 3,
        "batch_size": 8,
        "lr": 3e-3,
        "schedule": "linear",
        "warmup_epochs": 0.5,
        "ema_decay": 0.0,
        "threads": 1,  # a tiny model: one thread wastes nothing and never waits on a busy sibling core
        "precision": "fp32",
        "width": 8,  # text-tiny token width 4 x 8 = 32
        "max_length": 24,
        "length_buckets": 4,
    }
    return TrainConfig.model_validate(base | kw)


def _tiny(data: PreparedDataset, dropout: float = 0.1) -> tuple[torch.nn.Module, object]:
    tokenizer = text_tokenizer("text-tiny", texts=list(data.arrays("train")[0]), vocab_size=200)
    tokenizer.enable_truncation(24)
    torch.manual_seed(0)
    model = create_model(
        "text-tiny",
        num_classes=data.num_classes,
        vocab_size=tokenizer.get_vocab_size(),
        layers=2,
        width=32,
        max_length=24,
        dropout=dropout,
    )
    return model, tokenizer


def _same(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=atol, rtol=0) for k in sa)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 64), min_size=1, max_size=200),
    batch_size=st.integers(1, 17),
    bucket=st.integers(0, 6),
    seed=st.integers(0, 2**31),
)
def test_length_buckets_keep_every_example_once_per_epoch(
    lengths: list[int], batch_size: int, bucket: int, seed: int
) -> None:
    order = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    batches = length_buckets(lens, order, batch_size, bucket, torch.device("cpu"))
    seen = torch.cat(batches).sort().values
    assert torch.equal(seen, torch.arange(len(lengths)))
    assert len(batches) == -(-len(lengths) // batch_size)  # the loop's steps per epoch
    assert all(0 < len(b) <= batch_size for b in batches)
    again = length_buckets(lens, torch.Generator().manual_seed(seed), batch_size, bucket, torch.device("cpu"))
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))  # the seed alone decides


def test_buckets_pad_less_than_random_batches() -> None:
    lens = torch.from_numpy(np.random.default_rng(0).integers(2, 128, size=2000))
    padded = {}
    for bucket in (1, 50):
        batches = length_buckets(lens, torch.Generator().manual_seed(0), 32, bucket, torch.device("cpu"))
        padded[bucket] = sum(int(lens[b].max()) * len(b) for b in batches)
    assert padded[50] < 0.7 * padded[1]


def test_text_tiny_learns(text_data: PreparedDataset) -> None:
    model, tokenizer = _tiny(text_data)
    result = fit_model(model, text_data, _recipe(epochs=8), tokenizer=tokenizer)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert result.history[-1]["val_accuracy"] > 1 / 3  # three classes


def test_grad_accumulation_equals_one_big_batch_for_text(text_data: PreparedDataset) -> None:
    # each micro-batch is padded to its own longest text; masking makes the padding irrelevant
    recipe = _recipe(epochs=1, batch_size=12, schedule="constant", warmup_epochs=0.0)
    whole_model, tokenizer = _tiny(text_data, dropout=0.0)
    split_model, _ = _tiny(text_data, dropout=0.0)
    whole = fit_model(whole_model, text_data, recipe, tokenizer=tokenizer)
    split = fit_model(
        split_model, text_data, recipe.model_copy(update={"grad_accum": 3}), tokenizer=tokenizer
    )
    assert _same(whole.model, split.model, atol=1e-5)


def test_frozen_epochs_train_the_head_only(text_data: PreparedDataset) -> None:
    model, tokenizer = _tiny(text_data)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    after: list[dict[str, torch.Tensor]] = []

    def snapshot(epoch: int, metrics: dict[str, float]) -> None:
        after.append({k: v.clone() for k, v in model.state_dict().items()})

    fit_model(model, text_data, _recipe(epochs=2, freeze_epochs=1), tokenizer=tokenizer, on_epoch=snapshot)
    encoder = [k for k in start if k.startswith("encoder.") and start[k].is_floating_point()]
    assert encoder and all(torch.equal(after[0][k], start[k]) for k in encoder)
    assert not torch.equal(after[0]["head.weight"], start["head.weight"])
    assert all(p.requires_grad for p in model.parameters())  # released after the frozen epoch
    assert sum(not torch.equal(after[1][k], after[0][k]) for k in encoder) > len(encoder) // 2


def test_layer_decay_gives_each_layer_its_rate(text_data: PreparedDataset) -> None:
    model, _ = _tiny(text_data)
    optimizer = build_optimizer("adamw", model, 1e-3, 0.01, 0.9, False, layer_decay=0.5)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(rate) == sum(1 for _ in model.parameters())  # each parameter in one group
    named = dict(model.named_parameters())
    expect = {
        "encoder.embeddings.word_embeddings.weight": 1e-3 * 0.5**3,
        "encoder.encoder.layer.0.attention.self.query.weight": 1e-3 * 0.5**2,
        "encoder.encoder.layer.1.output.dense.bias": 1e-3 * 0.5,
        "head.weight": 1e-3,
    }
    for name, lr in expect.items():
        assert rate[id(named[name])] == pytest.approx(lr)
    with pytest.raises(ConfigError, match=r"`train\.layer_decay` needs a layered text model"):
        build_optimizer("adamw", create_model("tiny-cnn", 1, 2, 20), 1e-3, 0.0, 0.9, False, layer_decay=0.5)


def test_tokenizer_of_another_model_is_refused(text_data: PreparedDataset) -> None:
    model, _ = _tiny(text_data)  # a vocabulary of at most 200
    with pytest.raises(
        DataError, match=r"^The tokenizer gives token id \d+ but the model's vocabulary has \d+ "
    ):
        fit_model(model, text_data, _recipe(epochs=1), tokenizer=text_tokenizer("minilm-l6"))
    with pytest.raises(DataError, match="training it needs the model's tokenizer"):
        fit_model(model, text_data, _recipe(epochs=1))


def test_text_recipe_defaults_and_modality_checks() -> None:
    recipe = resolve_recipe(TrainConfig(), "text")
    assert (recipe.model, recipe.lr, recipe.schedule, recipe.epochs) == ("minilm-l6", 5e-5, "linear", 3)
    assert resolve_recipe(TrainConfig(finetune="lora"), "text").lr == 1e-3
    assert resolve_recipe(TrainConfig(lr=2e-5), "text").lr == 2e-5  # what the user set stays
    assert resolve_recipe(TrainConfig(), "image") == TrainConfig()
    with pytest.raises(
        ConfigError, match=r"`train\.model` seed-cnn takes image but the data set version holds text"
    ):
        resolve_recipe(TrainConfig(model="seed-cnn"), "text")
    with pytest.raises(
        ConfigError, match=r"takes text but the data set version holds image\. Choose one of: "
    ):
        resolve_recipe(TrainConfig(model="text-tiny"), "image")


@pytest.mark.slow
def test_text_run_kill_and_resume_gives_the_same_weights(text_workspace) -> None:
    recipe = _recipe(epochs=3)
    whole = train(text_workspace, recipe)

    def kill_after_one(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train(text_workspace, recipe, on_epoch=kill_after_one)
    killed = store_runs.list_runs(text_workspace.store)[-1]
    resumed = train(text_workspace, recipe, resume="latest")
    assert resumed.id == killed.id and resumed.status == "finished"
    a = load_file(str(Path(whole.path) / "model.safetensors"))
    b = load_file(str(Path(resumed.path) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (Path(whole.path) / "tokenizer.json").read_bytes() == (
        Path(resumed.path) / "tokenizer.json"
    ).read_bytes()


@pytest.mark.slow
def test_text_run_folder_loads_predicts_and_reports(text_workspace) -> None:
    run = train(text_workspace, _recipe(epochs=2, finetune="lora", lr=1e-2))
    folder = Path(run.path)
    spec = json.loads((folder / "model.json").read_text())
    assert spec["modality"] == "text" and spec["tokenizer"] == "tokenizer.json"
    assert spec["input"] == {"names": ["input_ids", "attention_mask"], "dtype": "int64", "max_length": 24}
    adapter = load_file(str(folder / "adapter.safetensors"))
    assert adapter and all("lora_" in k or k.startswith("head.") for k in adapter)
    weights = load_file(str(folder / "model.safetensors"))
    assert not any("lora_" in k for k in weights)  # merged: a plain text-tiny
    m = run.metrics
    assert 0 < m["trainable_params"] < m["params"] and m["tokens_per_s"] > 0 and m["plan_wall_s"] > 0
    assert m["model_flops_per_token"] == 4 * m["matmul_params"] + 6 * m["trainable_params"]
    assert 0 < m["mfu"] == pytest.approx(m["model_flops_per_s"] / m["measured_peak_flops_per_s"])
    trained = load_trained(text_workspace, run.id)
    x, y = trained.dataset.arrays("test")
    probs, embeddings = predict_texts(trained.model, trained.tokenizer, list(x), 24, batch_size=5)
    assert probs.shape == (len(x), 3) and embeddings.shape == (len(x), 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert evaluate(text_workspace, run.id)["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
    assert "tokens/s" in (folder / "report.html").read_text()


def _cli(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    import sys

    from dcloop.cli import main

    monkeypatch.chdir(root)
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["dcloop", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_trains_text_and_refuses_an_image_model(
    text_workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = text_workspace.root
    code, _, err = _cli(root, capsys, monkeypatch, "train", "--model", "seed-cnn")
    assert code == 2 and "`train.model` seed-cnn takes image but the data set version holds text" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli(root, capsys, monkeypatch, "train", "--model", "text-tiny", "--finetune", "sideways")
    assert code != 0 and "finetune" in err
    args = ["train", "--model", "text-tiny", "--epochs", "1", "--max-length", "16", "--format", "json"]
    code, out, err = _cli(root, capsys, monkeypatch, *args)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "finished" and summary["model"] == "text-tiny"
    spec = json.loads((Path(summary["path"]) / "model.json").read_text())
    assert spec["input"]["max_length"] == 16 and spec["finetune"] == "full"
    code, out, _ = _cli(root, capsys, monkeypatch, "models", "list", "--format", "json")
    modality = {row["name"]: row["modality"] for row in json.loads(out)}
    assert modality["minilm-l6"] == modality["text-tiny"] == "text" and modality["vit-tiny"] == "image"
