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
