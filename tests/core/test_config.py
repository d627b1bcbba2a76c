from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dcloop import config
from dcloop.errors import ConfigError


def test_template_is_valid_and_equals_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dcloop.yaml"
    path.write_text(config.commented_template())
    assert config.load(path) == config.Config()


def test_every_field_has_a_description() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, config._Section):
                missing += [f"{name}.{m}" for m in walk(annotation)]
            elif not info.description and model is not config.Config:
                missing.append(name)
        return missing

    assert walk(config.Config) == []


def test_reports_every_problem_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dcloop.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": -1, "epochs": "many", "colour": 1}}))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert "`train.lr`" in message and "Got -1" in message
    assert "`train.epochs`" in message and "'many'" in message
    assert "`train.colour`" in message and "not a known field" in message
    assert str(path) in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dcloop.yaml"
    path.write_text("train:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"line \d+ is not valid YAML"):
        config.load(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="Cannot read config"):
        config.load(Path("/nonexistent/dcloop.yaml"))


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        config.validate([1, 2])  # type: ignore[arg-type]


@given(lr=st.floats(min_value=1e-6, max_value=10.0), epochs=st.integers(1, 10000))
def test_overrides_round_trip(lr: float, epochs: int) -> None:
    cfg = config.with_overrides(config.Config(), "train", {"lr": lr, "epochs": epochs, "model": None})
    assert cfg.train.lr == lr and cfg.train.epochs == epochs
    assert cfg.train.model == config.Config().train.model
    assert config.validate(yaml.safe_load(config.dump(cfg))) == cfg


KNOWN = {
    "model": ["resnet-s", "seed-cnn", "tiny-cnn"],
    "optimizer": ["adam", "adamw", "sgd"],
    "schedule": ["constant", "cosine", "onecycle"],
    "loss": ["bce", "cross_entropy"],
}


def test_check_names_reports_every_unknown_name_with_the_closest() -> None:
    raw = {
        "train": {"model": "resnt-s", "optimizer": "adamm", "schedule": "cosin", "loss": "crossentropy"},
        "optimize": {"student": "tiny_cnn"},
        "tune": {"space": {"optimizer": {"type": "categorical", "choices": ["adamw", "lion"]}}},
    }
    with pytest.raises(ConfigError) as info:
        config.check_names(config.validate(raw), KNOWN, source="w/dcloop.yaml")
    message = str(info.value)
    assert "\n" not in message
    for expected in (
        "`train.model` in w/dcloop.yaml must be a model name (resnet-s, seed-cnn, tiny-cnn). "
        "Got 'resnt-s'. Did you mean 'resnet-s'?",
        "`train.optimizer` in w/dcloop.yaml must be an optimizer name",
        "Got 'cosin'. Did you mean 'cosine'",
        "Got 'crossentropy'. Did you mean 'cross_entropy'?",
        "`optimize.student` in w/dcloop.yaml must be a model name",
        "Got 'tiny_cnn'. Did you mean 'tiny-cnn'",
        "`tune.space.optimizer.choices` in w/dcloop.yaml must be an optimizer name (adam, adamw, sgd). "
        "Got 'lion'.",
    ):
        assert expected in message


def test_default_config_names_exist_in_the_registries() -> None:
    from dcloop.train._recipe import registry_names

    config.check_names(config.Config(), registry_names())  # raises on a default naming nothing


def test_config_validate_cli_checks_registry_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "dcloop.yaml"
    bad.write_text("train: {model: seedcnn}\n")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "config", "validate", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert f"`train.model` in {bad} must be a model name" in result.stderr
    assert "Did you mean 'seed-cnn'" in result.stderr and "Traceback" not in result.stderr
