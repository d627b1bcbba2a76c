"""The README's Python example: every line of its code block is in examples/api.py, and that script
runs end to end (import, train, optimize, register, serve in-process, predict, label) on a small real
Animal-MNIST subset."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "api.py"


def _readme_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "README's Python API section has no python code block"
    return [
        line.strip() for line in block[1].splitlines() if line.strip() and not line.strip().startswith("#")
    ]


def test_readme_example_is_the_tested_script() -> None:
    script = {line.strip() for line in EXAMPLE.read_text(encoding="utf-8").splitlines()}
    missing = [line for line in _readme_block() if line not in script]
    assert not missing, f"README lines not in examples/api.py: {missing}"


def test_example_runs_end_to_end(tmp_path: Path) -> None:
    from dcloop import config
    from dcloop.deploy import get_model_version
    from dcloop.feedback import labelled_predictions
    from dcloop.workspace import open_workspace

    folder = tmp_path / "ws"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(folder),
            "--model",
            "tiny-cnn",
            "--epochs",
            "1",
            "--images",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run ") and "test accuracy" in lines[0]
    assert re.fullmatch(r"pets@1 says (cat|dog) \(\d\.\d\d\); label: 200", lines[-1]), lines[-1]
    ws = open_workspace(folder, config.load(folder / "dcloop.yaml"))
    champion = get_model_version(ws, "pets@champion")
    assert champion.version == 1 and champion.method in ("onnx", "int8")
    (labelled,) = labelled_predictions(ws.store, model_name="pets")
    assert labelled.label == "cat" and labelled.model_version_id == champion.id
