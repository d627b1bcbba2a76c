"""`dcloop train/evaluate/runs/models` end to end on a real 300-image Animal-MNIST cat/dog subset.

Commands run through the real entry point ``dcloop.cli.main`` in this process (one-line errors, exit
codes); one test runs the installed command in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dcloop.cli import main


class Cli:
    def __init__(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.root, self.capsys, self.monkeypatch = root, capsys, monkeypatch
        monkeypatch.chdir(root)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["dcloop", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--format", "json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(
    workspace, catdog_npz: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    run = Cli(workspace.root, capsys, monkeypatch)
    code, _, err = run("data", "import", str(catdog_npz), "--name", "catdog300")
    assert code == 0, err
    return run


@pytest.mark.filterwarnings("ignore:The ..noload.. loader strategy:DeprecationWarning")  # inside MLflow
def test_train_evaluate_list_show(cli: Cli) -> None:
    run = cli.json("train", "--model", "tiny-cnn", "--epochs", "2", "--batch-size", "32", "--name", "cli")
    assert run["status"] == "finished" and run["name"] == "cli" and run["epochs_run"] == 2
    for key in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "images_per_s",
        "wall_s",
    ):
        assert isinstance(run[key], float), key
    assert run["accuracy"] > 0.5 and Path(run["report"]).is_file()
    assert sum(map(sum, run["confusion_matrix"])) == 60  # 20% of 300 held out
    evaluated = cli.json("evaluate", run["run"][:8])
    assert (
        evaluated["accuracy"] == run["accuracy"] and evaluated["confusion_matrix"] == run["confusion_matrix"]
    )
    assert [r["run"] for r in cli.json("runs", "list")] == [run["run"]]
    shown = cli.json("runs", "show", run["run"][:8])
    assert cli.json("runs", "show", "latest") == shown  # the newest run
    assert [e["epoch"] for e in shown["epochs"]] == [1, 2] and shown["config"]["model"] == "tiny-cnn"
    assert shown["lineage"]["dataset_id"] == run["dataset"] and shown["metrics"]["mlflow_run_id"]
    # mirrored to the workspace's own MLflow store, with its artifacts inside the workspace
    assert len(list((cli.root / ".dcloop" / "mlartifacts").rglob("report.html"))) == 1
    code, out, _ = cli("evaluate", run["run"])
    assert code == 0 and "accuracy" in out and "confusion matrix" in out
    assert {m["name"] for m in cli.json("models", "list")} >= {"seed-cnn", "resnet-s", "resnet-m", "tiny-cnn"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["train", "--optimizer", "adamm"],
            1,
            "error: Unknown optimizer 'adamm'. Known: adam, adamw, sgd. Did you mean 'adam' or 'adamw'?",
        ),
        (["train", "--schedule", "cosin"], 1, "error: Unknown schedule 'cosin'."),
        (["train", "--model", "resnet"], 1, "error: Unknown model 'resnet'."),
        (
            ["train", "--lr", "-1"],
            2,
            "error: `train.lr` in flags must satisfy: input should be greater than 0. Got -1.0.",
        ),
        (["train", "--precision", "fp8"], 2, "error: `train.precision` in flags must satisfy"),
        (["train", "--tta", "rotate"], 2, "error: `train.tta` in flags must satisfy"),
        (
            ["train", "--resize-share", "1"],
            2,
            "error: `train.resize_share` in flags must satisfy: input should be less than 1. Got 1.0.",
        ),
        (
            ["train", "--resize-scale", "0"],
            2,
            "error: `train.resize_scale` in flags must satisfy: input should be greater than 0. Got 0.0.",
        ),
        (["train", "--data", "nope"], 1, "error: No data set version 'nope'."),
        (["train", "--resume"], 1, "error: No unfinished run with a checkpoint in this workspace"),
        (["train", "abc"], 2, "error: RUN 'abc' is only read with --resume"),
        (["evaluate", "deadbeef"], 1, "error: No run 'deadbeef'."),
        (["runs", "show", "deadbeef"], 1, "error: No run 'deadbeef'."),
        (["optimize", "latest"], 1, "error: No runs in this workspace yet, so no 'latest'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(cli: Cli, args: list[str], code: int, message: str) -> None:
    got, _, err = cli(*args)
    assert got == code, err
    assert err.startswith(message) and "Traceback" not in err, err
    assert cli.json("runs", "list") == []  # nothing recorded


def test_bad_config_file_is_one_line_from_the_installed_command(cli: Cli) -> None:
    (cli.root / "dcloop.yaml").write_text("train:\n  epochs: many\n  colour: red\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "train"], cwd=cli.root, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "`train.epochs`" in result.stderr and "`train.colour`" in result.stderr and "'many'" in result.stderr
    )
