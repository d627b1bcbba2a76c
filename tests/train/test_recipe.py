"""Optimizers, schedules and losses: the numbers each one promises, and unknown names."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dcloop.errors import NotFoundError
from dcloop.train._recipe import build_loss, build_optimizer, build_schedule, check_names, optimizers


def _schedule(name: str, **kw: object):
    args = {
        "steps_per_epoch": 10,
        "epochs": 10,
        "warmup_epochs": 0.0,
        "step_size": 3,
        "gamma": 0.5,
        "patience": 1,
    }
    args.update(kw)
    return build_schedule(name, mode="max", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", optimizers.names())
def test_every_optimizer_lowers_a_quadratic_and_spares_biases_from_decay(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = build_optimizer(name, model, lr=0.05, weight_decay=0.1, momentum=0.9, nesterov=True)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    x, target = torch.randn(64, 4), torch.randn(64, 1)
    first = F.mse_loss(model(x), target).item()
    for _ in range(50):
        opt.zero_grad()
        F.mse_loss(model(x), target).backward()
        opt.step()
    assert F.mse_loss(model(x), target).item() < first * 0.8


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, foreach=False)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.05, foreach=False)),
        ("adamw", lambda p: torch.optim.AdamW(p, lr=0.05, foreach=False)),
    ],
)
def test_fused_optimizers_step_like_torchs_plain_loop(name: str, reference) -> None:  # type: ignore[no-untyped-def]
    """The fused kernels dcloop picks are a speed-up only: the same steps as the per-parameter loop."""
    torch.manual_seed(0)
    fused_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    plain_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    plain_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(name, fused_model, lr=0.05, weight_decay=0.1, momentum=0.9, nesterov=True)
    assert all(group["fused"] for group in fused.param_groups)
    groups = [{"params": list(g["params"]), "weight_decay": g["weight_decay"]} for g in fused.param_groups]
    by_id = dict(zip(map(id, fused_model.parameters()), plain_model.parameters(), strict=True))
    plain = reference([{**g, "params": [by_id[id(p)] for p in g["params"]]} for g in groups])
    x, target = torch.randn(32, 4), torch.randn(32, 1)
    for _ in range(5):
        for model, opt in ((fused_model, fused), (plain_model, plain)):
            opt.zero_grad()
            F.mse_loss(model(x), target).backward()
            opt.step()
    for mine, theirs in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_sgd_nesterov_flag_reaches_torch() -> None:
    opt = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, momentum=0.9, nesterov=True)
    assert opt.param_groups[0]["nesterov"] is True and opt.param_groups[0]["momentum"] == 0.9


def test_constant_step_cosine_factors() -> None:
    assert [_schedule("constant").factor(s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    step = _schedule("step")
    assert [step.factor(s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    cosine = _schedule("cosine")
    assert (
        cosine.factor(0) == 1.0
        and cosine.factor(50) == pytest.approx(0.5)
        and cosine.factor(100) == pytest.approx(0.0)
    )


def test_onecycle_matches_torch_onecyclelr() -> None:
    ours = _schedule("onecycle")
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100, cycle_momentum=False)
    for step in range(100):
        assert ours.factor(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6, abs=1e-9), step
        opt.step()
        torch_sched.step()


def test_warmup_ramps_linearly_in_front_of_any_schedule() -> None:
    warm = _schedule("cosine", warmup_epochs=1.0)
    assert warm.factor(0) == pytest.approx(0.1 * _schedule("cosine").factor(0))
    assert warm.factor(4) == pytest.approx(0.5 * _schedule("cosine").factor(4))
    assert warm.factor(20) == pytest.approx(_schedule("cosine").factor(20))


def test_plateau_decays_after_patience_and_round_trips_its_state() -> None:
    plateau = _schedule("plateau", warmup_epochs=0.5)
    for metric in (0.5, 0.6, 0.6):
        plateau.epoch_end(metric)
    assert plateau.factor(100) == 1.0
    plateau.epoch_end(0.59)  # second epoch without improvement > patience 1
    assert plateau.factor(100) == 0.5
    copy = _schedule("plateau", warmup_epochs=0.5)
    copy.load_state_dict(plateau.state_dict())
    assert copy.factor(100) == 0.5 and copy.state_dict() == plateau.state_dict()


def test_losses() -> None:
    torch.manual_seed(0)
    logits, y, images = torch.randn(8, 2), torch.tensor([0, 1] * 4), torch.zeros(8, 1, 4, 4)
    ce = build_loss("cross_entropy", label_smoothing=0.1)(logits, y, images)
    assert ce == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item())
    bce2 = build_loss("bce", label_smoothing=0.0)(logits, y, images)
    assert bce2 == pytest.approx(F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 2).float()).item())
    bce1 = build_loss("bce", label_smoothing=0.0)(logits[:, :1], y, images)
    assert bce1 == pytest.approx(F.binary_cross_entropy_with_logits(logits[:, 0], y.float()).item())
    smoothed = build_loss("bce", label_smoothing=0.2)(logits[:, :1], y, images)
    assert smoothed == pytest.approx(
        F.binary_cross_entropy_with_logits(logits[:, 0], y.float() * 0.8 + 0.1).item()
    )
    mse = build_loss("mse", label_smoothing=0.0)(logits, y, images)
    assert mse == pytest.approx(((logits.softmax(1) - F.one_hot(y, 2)) ** 2).mean().item())
    assert math.isfinite(mse.item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"optimizer": "adamm"},
            r"Unknown optimizer 'adamm'\. Known: adam, adamw, sgd\. Did you mean 'adam' or 'adamw'\?",
        ),
        (
            {"schedule": "cosin"},
            r"Unknown schedule 'cosin'\. Known: constant, cosine, linear, onecycle, plateau, step\. Did you mean 'cosine'",
        ),
        ({"loss": "crossentropy"}, r"Unknown loss 'crossentropy'\. .*Did you mean 'cross_entropy'\?"),
        ({"model": "seedcnn"}, r"Unknown model 'seedcnn'\. .*Did you mean 'seed-cnn'"),
    ],
)
def test_unknown_names_fail_with_suggestions(kwargs: dict[str, str], message: str) -> None:
    names = {
        "model": "tiny-cnn",
        "optimizer": "adamw",
        "schedule": "onecycle",
        "loss": "cross_entropy",
        **kwargs,
    }
    with pytest.raises(NotFoundError, match=message):
        check_names(**names, known_models=["tiny-cnn", "seed-cnn"])
