"""`dcloop demo --task text`: the same loop on texts; its world split, its shifts, and the whole turn on
tiny generated data with text-tiny."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop._demo_traffic import BANNER, shift_inputs
from dcloop._demo_world import HISTORY_SHARE, STREAM_SHARE, TASKS, read_texts, split_world

TOPICS = {
    "sports": "goal match team coach league score player stadium referee season striker keeper penalty",
    "cooking": "recipe oven flour butter garlic simmer onion pepper dough sauce bake kitchen spoon roast",
    "weather": "rain cloud storm forecast sunny wind snow thunder humid breeze frost drizzle fog sky",
}
COMMON = "the a of and to in it is was for on with as at by this that we they today really very some"


def write_topics(path: Path, per_class: int, seed: int = 0) -> Path:
    """A CSV of short texts on three topics: 40% topic words, the rest words every class shares."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        for label, words in TOPICS.items():
            vocabulary = words.split()
            for _ in range(per_class):
                picks = [
                    rng.choice(vocabulary) if rng.random() < 0.4 else rng.choice(COMMON.split())
                    for _ in range(rng.randint(8, 16))
                ]
                writer.writerow([" ".join(picks), label])
    return path


def texts(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def test_text_world_splits_each_class_and_writes_an_importable_history(tmp_path: Path) -> None:
    source = write_topics(tmp_path / "topics.csv", per_class=50)
    world = split_world(TASKS["text"], tmp_path, str(source), None)
    everything = read_texts(str(source), None)
    history = read_texts(str(world.history), None)
    assert world.history.name == "fortunes-history.csv"
    assert history.classes == everything.classes == sorted(TOPICS)
    for k in range(len(TOPICS)):
        assert (history.y == k).sum() == int(50 * HISTORY_SHARE)
    future = 150 - len(history.y)
    assert len(world.stream[1]) == int(future * STREAM_SHARE)
    assert len(world.stream[1]) + len(world.held_out[1]) == future
    # history, stream and held-out are disjoint and together make up the source, label for label
    seen = [
        *zip(history.x, (history.classes[i] for i in history.y), strict=True),
        *(
            (str(t), everything.classes[i])
            for part in (world.stream, world.held_out)
            for t, i in zip(*part, strict=True)
        ),
    ]
    assert sorted(seen) == sorted(
        zip(everything.x, (everything.classes[i] for i in everything.y), strict=True)
    )
    assert world.stream[0].dtype == object and isinstance(world.stream[0][0], str)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=8))
def test_text_shifts_keep_one_text_per_input_and_repeat(values: list[str]) -> None:
    x = texts(values)
    banner = shift_inputs("text", "banner", x)
    assert [str(t) for t in banner] == [f"{BANNER} {v}" for v in values]
    typos = shift_inputs("text", "typos", x)
    assert len(typos) == len(values) and typos.dtype == object
    assert list(typos) == list(shift_inputs("text", "typos", x.copy())), "the same slips on every run"
    for before, after in zip(values, typos, strict=True):
        # a slip changes one word's length by at most one letter, and never touches what is not a word
        assert abs(len(after) - len(before)) <= len(before.split()) + 1
        assert [c for c in after if not c.isascii() or not c.isalpha()] == [
            c for c in before if not c.isascii() or not c.isalpha()
        ]


def test_typos_slip_about_the_share_of_long_words_they_promise() -> None:
    rng = random.Random(0)
    vocabulary = ["quotation", "programming", "politics", "science", "computer", "proverb"]
    rows = [[rng.choice(vocabulary) for _ in range(20)] for _ in range(100)]
    shifted = shift_inputs("text", "typos", texts([" ".join(row) for row in rows]))
    slipped = sum(
        a != b
        for text, row in zip(shifted, rows, strict=True)
        for a, b in zip(text.split(), row, strict=True)
    )
    assert 0.33 < slipped / 2000 < 0.47  # 40% of the words over three letters, give or take chance
    untouched = " ".join(f"word{i}" for i in range(20))  # letters and digits: not a word, left alone
    assert shift_inputs("text", "typos", texts([untouched]))[0] == untouched


def test_a_shift_of_the_other_modality_is_refused() -> None:
    from dcloop.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"Unknown text shift 'negative'\. Known: banner, typos"):
        shift_inputs("text", "negative", texts(["a"]))


def test_text_demo_config_is_valid() -> None:
    from dcloop.config import validate
    from dcloop.demo import demo_config

    for fast, model in ((False, "minilm-l6"), (True, "text-tiny")):
        config = validate(demo_config(fast, task="text"), source="demo")
        assert config.train.model == model and config.train.max_length == 64
        assert config.loop.model == "quotes" and config.data.text_column == "text"
        assert config.gate.class_regression_p == 0.05, "text: a class drop is refused when significant"
        image = validate(demo_config(fast), source="demo")
        assert image.gate == type(image.gate)(), "the image demo keeps the gate's defaults"


def test_an_unknown_task_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcloop.cli",
            "demo",
            str(tmp_path / "d"),
            "--task",
            "audio",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["error: Unknown demo task 'audio'. Known: image, text."]
    assert not (tmp_path / "d").exists(), "nothing made before the task is known"


@pytest.mark.slow
def test_text_demo_closes_the_loop_on_generated_topics(tmp_path: Path) -> None:
    source = write_topics(tmp_path / "topics.csv", per_class=200)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcloop.cli",
            "demo",
            str(tmp_path / "demo"),
            "--task",
            "text",
            "--fast",
            "--source",
            str(source),
            "--shift",
            "typos",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["task"] == "text" and result["shift"] == "typos" and result["champion"] == "quotes@1"
    assert result["dataset"]["classes"] == sorted(TOPICS)
    future = 600 - sum(sum(c.values()) for c in result["dataset"]["counts"].values())
    assert result["stream"] + result["held_out"] == future
    assert result["labelled"] == round(0.8 * result["stream"])
    assert result["accuracy_unshifted"] > result["accuracy_shifted_before"], "the slips hurt"
    assert result["challenger"] == "quotes@2"
    if result["promoted"]:
        assert result["served_after"] == "quotes@2", "the server switched to the new champion"
        assert result["accuracy_shifted_after"] >= result["accuracy_shifted_before"]
    else:
        assert result["gate_reasons"] and result["served_after"] == "quotes@1"
    assert any("embedding drift" in alert for alert in result["alerts"]), result["alerts"]
    assert result["alert_gauges"]["embedding_drift:quotes@1"] == 1.0
    for path in result["reports"].values():
        assert Path(path).is_file(), path
    assert "shifted texts" in Path(result["report"]).read_text()
