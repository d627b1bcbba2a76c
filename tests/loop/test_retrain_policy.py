"""The retraining policy (`retrain` config): warm start, replayed history, weighted feedback, epochs, lr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from loopkit import set_config

from dcloop._demo_traffic import shift_images
from dcloop.feedback._retrain import replay_and_weight, retrain
from dcloop.store import runs as store_runs


@given(
    old=st.integers(1, 60),
    new=st.integers(0, 30),
    share=st.floats(0.01, 1.0),
    weight=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_replay_and_weight_counts(old: int, new: int, share: float, weight: int, seed: int) -> None:
    train = np.random.default_rng(seed).permutation(old + new)  # below ``old``: the base's examples
    chosen = replay_and_weight(train, old, share, weight, seed)

    replayed, fed = chosen[chosen < old], chosen[chosen >= old]
    assert len(replayed) == max(1, round(old * share)) and len(set(replayed.tolist())) == len(replayed)
    assert set(replayed.tolist()) <= set(range(old))
    values, counts = np.unique(fed, return_counts=True)
    assert values.tolist() == list(range(old, old + new)) and set(counts.tolist()) <= {weight}
    assert np.array_equal(chosen, replay_and_weight(train, old, share, weight, seed)), (
        "same seed, same sample"
    )


def test_all_replayed_and_weight_one_keep_the_split() -> None:
    train = np.array([5, 0, 9, 3, 12, 11])
    assert sorted(replay_and_weight(train, 10, 1.0, 1, 0).tolist()) == sorted(train.tolist())


def _weights(run_id: str, ws) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(store_runs.get_run(ws.store, run_id).path) / "model.safetensors"))


def test_a_warm_challenger_starts_from_the_champion_on_the_policy_split(champion_ws, traffic, world) -> None:
    """With a vanishing learning rate the warm-started challenger is the champion; from scratch it is not.
    Its train split is half the base's examples and the new feedback three times."""
    from dcloop.data import load_dataset
    from dcloop.deploy._registry import get_model_version

    ws = set_config(champion_ws, "retrain", feedback_weight=3, replay_share=0.5, lr_scale=1e-6, epochs=1)
    champion = get_model_version(ws, "animals@champion")
    x, y = shift_images("negative", world["x"][:60]), world["y"][:60]
    _, ids, _ = traffic.predict(x)
    traffic.label(ids, y)

    warm = retrain(ws, warm_start=True)
    run = store_runs.get_run(ws.store, warm.run_id)
    base_recipe = store_runs.get_run(ws.store, champion.run_id).config
    assert run.config["lr"] == base_recipe["lr"] * 1e-6 and run.config["epochs"] == 1
    assert run.metrics["epochs_run"] == 1
    chosen = np.load(Path(run.path) / "train_index.npy")
    base_train = load_dataset(ws, warm.base_dataset).splits["train"]
    new_train = load_dataset(ws, warm.dataset).splits["train"]
    new_train = new_train[new_train >= len(load_dataset(ws, warm.base_dataset).y)]
    assert len(chosen) == warm.train_examples == round(len(base_train) * 0.5) + 3 * len(new_train) > 0
    before, after = _weights(champion.run_id, ws), _weights(warm.run_id, ws)
    assert before.keys() == after.keys()
    assert all(np.allclose(before[k], after[k], atol=1e-5) for k in before), "it starts from the champion"
    assert warm.test_metrics["accuracy"] == store_runs.get_run(ws.store, champion.run_id).metrics["accuracy"]

    from dcloop.config import TrainConfig
    from dcloop.train._loop import seed_everything
    from dcloop.train._trained import build_model

    recipe = TrainConfig.model_validate(run.config)
    seed_everything(recipe.seed)  # what the same run would have started from without the champion
    scratch = {
        k: v.detach().numpy()
        for k, v in build_model(recipe, load_dataset(ws, warm.dataset)).state_dict().items()
    }
    assert max(float(np.abs(scratch[k] - after[k]).max()) for k in after) > 1e-2


def test_the_learning_rate_is_scaled_and_the_images_kept_full_size_only_for_a_warm_start() -> None:
    from dcloop.config import RetrainConfig, TrainConfig
    from dcloop.feedback._retrain import _challenger_recipe

    recipe, policy = TrainConfig(lr=0.01, epochs=8), RetrainConfig(lr_scale=0.5, epochs=12)
    assert (_challenger_recipe(recipe, policy, True).lr, _challenger_recipe(recipe, policy, True).epochs) == (
        0.005,
        12,
    )
    assert _challenger_recipe(recipe, policy, False).lr == 0.01
    assert _challenger_recipe(recipe, policy, False).resize_share == recipe.resize_share == 0.5
    assert _challenger_recipe(recipe, RetrainConfig(), True) == recipe.model_copy(
        update={"resize_share": 0.0}
    ), "the defaults keep the champion's recipe, every fine-tuning step at full size"
