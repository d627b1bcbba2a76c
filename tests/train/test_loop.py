"""fit_model on in-memory data: it learns, it is deterministic, and its options do what they say."""

from __future__ import annotations

import pytest
import torch

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.train import fit_model
from dcloop.train._models import create_model


def _fit(data: PreparedDataset, recipe: TrainConfig, model: str | None = None, **kw):
    torch.manual_seed(123)  # fit_model reseeds: this must not matter
    name = model or recipe.model
    return fit_model(create_model(name, 1, data.num_classes, 20), data, recipe, **kw)


def _same(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.allclose(sa[k].float(), sb[k].float(), atol=atol, rtol=0) for k in sa
    )


def test_learns_and_records_every_epoch(blob_data: PreparedDataset, fast_recipe: TrainConfig) -> None:
    result = _fit(blob_data, fast_recipe)
    assert len(result.history) == 3 and result.history[-1]["val_accuracy"] >= 0.9
    keys = {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_f1_macro",
        "lr",
        "images_per_s",
        "epoch_s",
    }
    assert keys <= set(result.history[0])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # the kept epoch is the last one with the best monitored value (val_loss: lowest)
    assert fast_recipe.monitor == "val_loss"
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == max(i for i, v in enumerate(losses, 1) if v == min(losses))
    assert result.images_per_s > 0
    assert not result.model.training


def test_same_seed_same_weights_other_seed_differs(
    blob_data: PreparedDataset, fast_recipe: TrainConfig
) -> None:
    a, b = _fit(blob_data, fast_recipe), _fit(blob_data, fast_recipe)
    assert _same(a.model, b.model)
    c = _fit(blob_data, fast_recipe.model_copy(update={"seed": 1}))
    assert not _same(a.model, c.model)


def test_grad_accumulation_equals_one_big_batch(blob_data: PreparedDataset) -> None:
    recipe = TrainConfig(
        model="seed-cnn", epochs=1, batch_size=48, lr=1e-3, threads=2, schedule="constant", precision="fp32"
    )  # fp32: bf16 rounding would differ between micro-batch and whole-batch sums
    recipe.augment.enabled = False
    whole = _fit(blob_data, recipe, model="seed-cnn")
    split = _fit(blob_data, recipe.model_copy(update={"grad_accum": 3}), model="seed-cnn")
    assert _same(whole.model, split.model, atol=1e-5)


def test_best_epoch_weights_are_returned_and_early_stopping_stops(blob_data: PreparedDataset) -> None:
    recipe = TrainConfig(
        model="tiny-cnn",
        epochs=30,
        batch_size=32,
        lr=0.01,
        threads=2,
        early_stopping_patience=1,
        monitor="val_loss",
    )
    result = _fit(blob_data, recipe)
    assert result.stopped_early and len(result.history) < 30
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert result.best_metric == pytest.approx(min(losses))


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16"},
        {"channels_last": False},
        {
            "grad_clip": 0.5,
            "optimizer": "sgd",
            "lr": 0.1,
            "epochs": 8,
            "schedule": "cosine",
            "warmup_epochs": 1.0,
        },
        {"loss": "bce"},
        {"loss": "mse", "schedule": "plateau"},
    ],
)
def test_options_train_to_finite_results(
    blob_data: PreparedDataset, fast_recipe: TrainConfig, options: dict
) -> None:
    result = _fit(blob_data, fast_recipe.model_copy(update=options))
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert result.history[-1]["val_accuracy"] >= 0.6


def test_channels_last_training_returns_plain_layout_weights_and_auto_precision_resolves(
    blob_data: PreparedDataset, fast_recipe: TrainConfig
) -> None:
    from dcloop.train._loop import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    result = _fit(blob_data, fast_recipe.model_copy(update={"channels_last": True, "precision": "auto"}))
    assert result.precision == resolve_precision("auto", cpu) in {"fp32", "bf16"}
    assert all(p.is_contiguous() for p in result.model.parameters()), "safetensors needs plain layout"


def test_custom_loss_and_on_epoch_hook(blob_data: PreparedDataset, fast_recipe: TrainConfig) -> None:
    calls: list[tuple[int, torch.Size]] = []
    seen: list[int] = []

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        calls.append((len(targets), images.shape))
        return torch.nn.functional.cross_entropy(logits, targets)

    _fit(blob_data, fast_recipe, loss_fn=loss_fn, on_epoch=lambda epoch, metrics: seen.append(epoch))
    assert seen == [1, 2, 3]
    assert calls and all(shape[1:] == (1, 20, 20) and n == shape[0] for n, shape in calls)


def test_on_epoch_exception_propagates(blob_data: PreparedDataset, fast_recipe: TrainConfig) -> None:
    class Prune(Exception):
        pass

    def hook(epoch: int, metrics: dict[str, float]) -> None:
        raise Prune(f"epoch {epoch}")

    with pytest.raises(Prune, match="epoch 1"):
        _fit(blob_data, fast_recipe, on_epoch=hook)


def test_ema_keeps_averaged_weights(blob_data: PreparedDataset, fast_recipe: TrainConfig) -> None:
    plain = _fit(blob_data, fast_recipe.model_copy(update={"ema_decay": 0.0}))
    averaged = _fit(blob_data, fast_recipe.model_copy(update={"ema_decay": 0.9}))
    assert not _same(plain.model, averaged.model)
    assert all(torch.isfinite(p).all() for p in averaged.model.parameters())
    assert averaged.history[-1]["val_accuracy"] >= 0.9
