"""Starting points that go wrong say what to do next, in one line: serving on a port in use, serving
or monitoring with no model registered, importing a path that does not exist."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from dcloop.errors import ConfigError, NotFoundError


def test_serve_on_a_port_in_use_is_one_line_with_a_free_port_to_try(served_ws) -> None:
    from dcloop.deploy import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"Port {port} on 127.0.0.1 is already in use .* --port {port + 1}$"
        ):
            serve(served_ws, "pets@champion", host="127.0.0.1", port=port)


def test_no_model_registered_names_the_register_command(workspace) -> None:
    from dcloop.deploy._registry import resolve_model_name

    with pytest.raises(
        NotFoundError, match=r"No model is registered .* dcloop models register <run or variant>"
    ):
        resolve_model_name(workspace)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve"], "error: No model is registered in this workspace yet."),
        (["data", "import", "./missing"], "error: Source path ./missing does not exist."),
    ],
)
def test_cli_says_the_next_command(workspace, args: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", *args],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DCLOOP_TOKEN": "t", "COLUMNS": "80"},
    )
    assert done.returncode != 0 and done.stderr.startswith(expected), done.stderr
    assert done.stderr.count("\n") == 1 and "dcloop " in done.stderr.split(".", 1)[1]


@pytest.mark.parametrize("given", ["0", "65", "two", "-1", "1.5", "9" * 30])
def test_a_bad_workers_count_is_one_line_naming_the_flag(served_ws, given: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "serve", "--workers", given],
        cwd=served_ws.root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DCLOOP_TOKEN": "t", "COLUMNS": "80"},
    )
    assert done.returncode != 0, done.stderr
    assert done.stderr.startswith(
        "error: --workers must be a number of server processes from 1 to 64, or auto."
    )
    assert done.stderr.count("\n") == 1
