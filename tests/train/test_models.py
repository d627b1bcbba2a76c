"""Every zoo model keeps its modality's contract: shapes, finite output, one training step with
gradients everywhere, ONNX export with parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcloop.errors import NotFoundError
from dcloop.train._models import create_model, describe_models, list_models

ZOO = sorted(list_models())
IMAGE = sorted(list_models("image"))
TEXT = sorted(list_models("text"))
# text-tiny as the tests build it: 2 layers, width 32, a made-up 100-token vocabulary
TEXT_KWARGS = {"text-tiny": {"vocab_size": 100, "layers": 2, "width": 32, "max_length": 16}}


def test_every_entry_has_a_modality_contract() -> None:
    assert (
        sorted(IMAGE + TEXT) == ZOO and {"vit-tiny"} <= set(IMAGE) and {"minilm-l6", "text-tiny"} <= set(TEXT)
    )


@pytest.mark.parametrize("name", IMAGE)
@pytest.mark.parametrize(("channels", "classes", "size"), [(1, 2, 28), (3, 10, 32)])
def test_shapes_finite_and_every_parameter_learns(name: str, channels: int, classes: int, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, channels, classes, size)
    x = torch.rand(4, channels, size, size)
    logits = model(x)
    assert logits.shape == (4, classes)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(4) % classes).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", IMAGE)
def test_onnx_export_matches_torch(name: str, tmp_path: Path) -> None:
    # the project's own exporter and parity check, so the zoo contract covers what deploy ships
    from dcloop.optimize import check_parity, export_onnx

    torch.manual_seed(0)
    model = create_model(name, 1, 2, 28).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", (1, 28, 28))
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    assert check_parity(model, path, x) <= 1e-4


def _text_batch(vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch 2, length 16, the second text padded after 9 tokens."""
    ids = torch.randint(1, vocab, (2, 16), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return ids * mask, mask


@pytest.fixture(scope="module", params=TEXT)
def text_model(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    name = request.param
    return name, create_model(name, num_classes=3, **TEXT_KWARGS.get(name, {}))


def test_text_models_train_one_step_with_gradients_everywhere(
    text_model: tuple[str, torch.nn.Module],
) -> None:
    name, model = text_model
    model.train()
    ids, mask = _text_batch(model.vocab_size)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logits = model(ids, mask)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert model.embed(ids, mask).shape == (2, model.head.in_features)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name
    optimizer.step()
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters()), name


def test_text_padding_does_not_change_a_text_logits(text_model: tuple[str, torch.nn.Module]) -> None:
    _, model = text_model
    model.eval()
    ids, mask = _text_batch(model.vocab_size, seed=1)
    with torch.no_grad():
        padded = model(ids, mask)[1]
        alone = model(ids[1:, :9], mask[1:, :9])[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_text_onnx_export_matches_torch(text_model: tuple[str, torch.nn.Module], tmp_path: Path) -> None:
    import onnxruntime as ort

    name, model = text_model
    model.eval()
    path = tmp_path / f"{name}.onnx"
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        _text_batch(model.vocab_size),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # another batch size and sequence length than the export's
    ids = torch.randint(1, model.vocab_size, (3, 11), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    got = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        want = model(ids, mask).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_describe_models_counts_parameters() -> None:
    rows = {r["name"]: r for r in describe_models()}
    assert set(rows) == set(ZOO)
    assert rows["seed-cnn"]["params"] == sum(
        p.numel() for p in create_model("seed-cnn", 1, 2, 28).parameters()
    )
    assert rows["tiny-cnn"]["params"] < rows["seed-cnn"]["params"] < rows["resnet-s"]["params"]
    assert all(r["description"] for r in rows.values())


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(
        NotFoundError,
        match=r"Unknown model 'resnet-x'\. Known: .*Did you mean 'resnet-[ms]' or 'resnet-[ms]'",
    ):
        create_model("resnet-x", 1, 2, 28)
