"""`dcloop cluster up/down/status`: a local Ray head to try `--cluster`, and what a cluster holds."""

from __future__ import annotations

import typer

from dcloop.cli._output import Format, note, print_json, print_mapping, print_table

cluster_app = typer.Typer(
    help="Ray cluster: start a local head, stop it, show nodes and running jobs.", no_args_is_help=True
)
_FORMAT = typer.Option(Format.table, "--format", help="table or json.")
_ADDRESS = typer.Option(
    None,
    "--address",
    help="Ray address (ray://HEAD:10001, HOST:6379, auto); default: RAY_ADDRESS, cluster.address.",
)


@cluster_app.command("up")
def up(
    num_cpus: int = typer.Option(None, "--num-cpus", min=1, help="CPUs the head offers (default: all)."),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1024,
        max=65534,
        help="Head port; the Ray client uses PORT+1. Default 6379, or the next free pair if taken.",
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Start a one-machine Ray head on the loopback address, with Ray's token authentication on.

    Examples: dcloop cluster up --num-cpus 2
              dcloop train --cluster      (then: dcloop cluster down)
    """
    from dcloop.cluster import cluster_up
    from dcloop.workspace import open_workspace

    record = cluster_up(open_workspace(), num_cpus=num_cpus, port=port)
    if fmt is Format.json:
        print_json(record)
        return
    print_mapping(
        "local Ray head", {k: record[k] for k in ("address", "client_address", "num_cpus", "temp_dir")}
    )
    note(f"auth token: {record['token_path']}")


@cluster_app.command("down")
def down() -> None:
    """Stop the local Ray head `dcloop cluster up` started for this workspace."""
    from dcloop.cluster import cluster_down
    from dcloop.workspace import open_workspace

    note("local Ray head stopped" if cluster_down(open_workspace()) else "no local Ray head was running")


@cluster_app.command("status")
def status(address: str = _ADDRESS, fmt: Format = _FORMAT) -> None:
    """Nodes (resources, free CPUs, labels), totals, and the dcloop jobs running on the cluster.

    Example: RAY_ADDRESS=ray://head:10001 dcloop cluster status --format json
    """
    from dcloop.cluster import cluster_status, connected
    from dcloop.workspace import open_workspace

    ws = open_workspace()
    with connected(ws, address):
        found = cluster_status(ws)
    if fmt is Format.json:
        print_json(found)
        return
    print_mapping("cluster", found["totals"])
    rows = [
        [n["id"][:8], n["address"], "head" if n["head"] else "", f"{n['free_cpus']:g}/{n['cpus']:g}",
         f"{n['free_gpus']:g}/{n['gpus']:g}", n["memory_gb"], ",".join(sorted(n["custom"]))]
        for n in found["nodes"]
    ]  # fmt: skip
    print_table("nodes", ["node", "address", "role", "free/CPU", "free/GPU", "mem GB", "labels"], rows)
    jobs = [[j["run"], j["name"], j["kind"], j["status"]] for j in found["jobs"]]
    if jobs:
        print_table("running dcloop jobs", ["run", "name", "kind", "status"], jobs)
    else:
        note("no dcloop jobs running on the cluster")


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")
