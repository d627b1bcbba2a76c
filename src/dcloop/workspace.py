"""A workspace is a folder with dcloop.yaml and .dcloop/ (store, artifacts, MLflow)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dcloop import config as config_module
from dcloop.atomic import write_text
from dcloop.config import Config
from dcloop.errors import ConfigError, NotFoundError

CONFIG_NAME = "dcloop.yaml"
STATE_DIR = ".dcloop"


@dataclass(frozen=True)
class Workspace:
    """Paths and settings of one workspace. Open with :func:`open_workspace` or :func:`init_workspace`."""

    root: Path
    config: Config

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def datasets_dir(self) -> Path:
        return self.state / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.state / "runs"

    @property
    def artifacts_dir(self) -> Path:
        return self.state / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def store_url(self) -> str:
        return self.config.store.url or f"sqlite:///{self.state / 'dcloop.db'}"

    @property
    def mlflow_uri(self) -> str:
        return self.config.tracking.mlflow_uri or f"sqlite:///{self.state / 'mlflow.db'}"

    @cached_property
    def store(self):  # -> dcloop.store.Store (imported lazily: SQLAlchemy is not needed for --help)
        from dcloop.store import open_store

        return open_store(self.store_url)


def init_workspace(directory: str | os.PathLike[str], force: bool = False) -> Workspace:
    """Create dcloop.yaml (commented, defaults) and .dcloop/ in ``directory``; keep an existing config."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_NAME
    if force or not path.exists():
        write_text(path, config_module.commented_template())
    workspace = open_workspace(directory)
    for folder in (workspace.datasets_dir, workspace.runs_dir, workspace.artifacts_dir):
        folder.mkdir(parents=True, exist_ok=True)
    workspace.store  # creates the database and applies migrations  # noqa: B018
    return workspace


def find_root(start: str | os.PathLike[str]) -> Path:
    """The nearest folder at or above ``start`` that holds dcloop.yaml."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise NotFoundError(f"No {CONFIG_NAME} in {start} or above. Run `dcloop init` first.")


def open_workspace(
    directory: str | os.PathLike[str] | None = None, config: Config | None = None
) -> Workspace:
    """Open the workspace at or above ``directory`` (default: $DCLOOP_WORKSPACE or the current folder)."""
    if directory is None:
        directory = Path(os.environ.get("DCLOOP_WORKSPACE", "."))
    root = find_root(directory)
    if config is None:
        config = config_module.load(root / CONFIG_NAME)
    if not isinstance(config, Config):
        raise ConfigError("config must be a dcloop Config")
    return Workspace(root=root, config=config)
