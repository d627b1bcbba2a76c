"""`dcloop init` and `dcloop config validate`."""

from __future__ import annotations

from pathlib import Path

import typer

from dcloop.cli._output import Format, print_json, print_mapping

config_app = typer.Typer(help="Check and show the workspace configuration.", no_args_is_help=True)


def init(
    directory: Path = typer.Argument(Path("."), help="Folder of the new workspace (created if missing)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing dcloop.yaml with defaults."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Create a workspace: a commented dcloop.yaml and .dcloop/ (store, artifacts).

    Example: dcloop init my-project && cd my-project
    """
    from dcloop.workspace import init_workspace

    ws = init_workspace(directory, force=force)
    info = {"root": str(ws.root), "config": str(ws.root / "dcloop.yaml"), "store": ws.store_url}
    if fmt is Format.json:
        print_json(info)
    else:
        print_mapping("workspace ready", info)


@config_app.command("validate")
def validate(
    path: Path = typer.Argument(None, help="A dcloop.yaml (default: the workspace's)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Check a config file without running anything: every field, and every model, optimizer,
    schedule and loss name against its registry; exit 2 with the list of problems.

    Example: dcloop config validate dcloop.yaml
    """
    from dcloop import config
    from dcloop.train._recipe import registry_names
    from dcloop.workspace import CONFIG_NAME, find_root

    target = path if path is not None else find_root(Path(".")) / CONFIG_NAME
    cfg = config.load(target)
    config.check_names(cfg, registry_names(), source=str(target))
    if fmt is Format.json:
        print_json({"valid": True, "path": str(target), "config": cfg.model_dump(mode="json")})
    else:
        print_mapping(f"{target} is valid", {k: v for k, v in cfg.model_dump(mode="json").items()})


@config_app.command("show")
def show() -> None:
    """Print the resolved configuration (defaults filled in) as YAML."""
    from dcloop import config
    from dcloop.workspace import open_workspace

    typer.echo(config.dump(open_workspace().config), nl=False)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(config_app, name="config")
