"""`dcloop train`, `dcloop evaluate`, `dcloop runs list/show`, `dcloop models list`.

``models_app`` is a module attribute so other command modules can add to the same `models` group.
"""

from __future__ import annotations

from typing import Any

import typer

from dcloop.cli._help import FieldHelp, field_help
from dcloop.cli._output import Format, note, print_json, print_mapping, print_table

runs_app = typer.Typer(help="List and inspect training runs.", no_args_is_help=True)
models_app = typer.Typer(help="The model zoo and trained models.", no_args_is_help=True)

_FORMAT = typer.Option(Format.table, "--format", help="table or json.")
_HEADLINE = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    print_mapping(title, {k: metrics.get(k) for k in _HEADLINE if metrics.get(k) is not None})
    classes = list(metrics["per_class"])
    print_table(
        "per class (test)",
        ["class", "precision", "recall", "f1", "support"],
        [[c, *metrics["per_class"][c].values()] for c in classes],
    )
    print_table(
        "confusion matrix (rows: true)",
        ["", *classes],
        [[c, *row] for c, row in zip(classes, metrics["confusion_matrix"], strict=True)],
    )


def train(
    data: str = typer.Option(None, "--data", help="Data set version id, prefix or name (default: newest)."),
    model: str = typer.Option(None, "--model", help=field_help("train.model")),
    width: int = typer.Option(None, "--width", help=field_help("train.width")),
    epochs: int = typer.Option(None, "--epochs", help=field_help("train.epochs")),
    lr: float = typer.Option(None, "--lr", help=field_help("train.lr")),
    batch_size: int = typer.Option(None, "--batch-size", help=field_help("train.batch_size")),
    optimizer: str = typer.Option(None, "--optimizer", help=field_help("train.optimizer")),
    schedule: str = typer.Option(None, "--schedule", help=field_help("train.schedule")),
    loss: str = typer.Option(None, "--loss", help=field_help("train.loss")),
    seed: int = typer.Option(None, "--seed", help=field_help("train.seed")),
    precision: str = typer.Option(None, "--precision", help=field_help("train.precision")),
    device: str = typer.Option(None, "--device", help=field_help("train.device")),
    budget: str = typer.Option(None, "--budget", help=field_help("train.budget_s")),
    target_accuracy: float = typer.Option(
        None, "--target-accuracy", help=field_help("train.target_accuracy")
    ),
    val_every_steps: int = typer.Option(None, "--val-every-steps", help=field_help("train.val_every_steps")),
    tta: str = typer.Option(None, "--tta", help=field_help("train.tta")),
    resize_share: float = typer.Option(None, "--resize-share", help=field_help("train.resize_share")),
    resize_scale: float = typer.Option(None, "--resize-scale", help=field_help("train.resize_scale")),
    finetune: str = typer.Option(None, "--finetune", help=field_help("train.finetune")),
    max_length: int = typer.Option(None, "--max-length", help=field_help("train.max_length")),
    layer_decay: float = typer.Option(None, "--layer-decay", help=field_help("train.layer_decay")),
    freeze_epochs: int = typer.Option(None, "--freeze-epochs", help=field_help("train.freeze_epochs")),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel worker processes on this node."),
    nnodes: str = typer.Option(None, "--nnodes", help="torchrun --nnodes (e.g. 2 or 1:4)."),
    node_rank: int = typer.Option(None, "--node-rank", help="torchrun --node-rank."),
    rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="torchrun --rdzv-endpoint HOST:PORT."),
    rdzv_backend: str = typer.Option(None, "--rdzv-backend", help="torchrun --rdzv-backend (c10d, static)."),
    rdzv_id: str = typer.Option(None, "--rdzv-id", help="torchrun --rdzv-id shared by all nodes."),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Train with Ray Train on the cluster (RAY_ADDRESS, cluster.address, cluster up).",
    ),
    num_workers: int = typer.Option(None, "--num-workers", min=1, help=field_help("cluster.num_workers")),
    cpus_per_worker: float = typer.Option(
        None, "--cpus-per-worker", help=field_help("cluster.cpus_per_worker")
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an unfinished run: RUN, or the latest one when RUN is left out."
    ),
    resume_run: str = typer.Argument(None, metavar="RUN", help="With --resume: the run to continue."),
    name: str = typer.Option(None, "--name", help="Run name (default: model and id)."),
    fmt: Format = _FORMAT,
) -> None:
    """Train a model on a data set version with the workspace's `train` recipe, overridden by flags.

    Examples: dcloop train --epochs 10
              dcloop train --model seed-cnn --optimizer adam --schedule constant
              dcloop train --resume            (continue the latest killed run)
              dcloop train --nproc 2           (data-parallel on this machine)
              dcloop train --model minilm-l6 --finetune lora   (a text data set; LoRA adapters)
              dcloop train --budget 2m         (stop at two minutes; the schedule fits the budget)
              dcloop train --target-accuracy 0.95   (stop once validation reaches 95%)
              dcloop train --tta flip      (answer with the mean of each image and its mirror image)
              dcloop train --resize-share 0  (full-size images from the first step: no progressive resizing)
              dcloop train --cluster --num-workers 4   (Ray Train on the cluster)
    """
    from dcloop import config
    from dcloop.errors import ConfigError
    from dcloop.train import train as train_run
    from dcloop.workspace import open_workspace

    if resume_run is not None and not resume:
        raise ConfigError(
            f"RUN {resume_run!r} is only read with --resume: dcloop train --resume {resume_run}."
        )
    ws = open_workspace()
    overrides = {
        "model": model,
        "width": width,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "schedule": schedule,
        "loss": loss,
        "seed": seed,
        "precision": precision,
        "device": device,
        "budget_s": budget,
        "target_accuracy": target_accuracy,
        "val_every_steps": val_every_steps,
        "tta": tta,
        "resize_share": resize_share,
        "resize_scale": resize_scale,
        "finetune": finetune,
        "max_length": max_length,
        "layer_decay": layer_decay,
        "freeze_epochs": freeze_epochs,
    }
    recipe = config.with_overrides(ws.config, "train", overrides).train
    passthrough = {"--nnodes": nnodes, "--node-rank": node_rank, "--rdzv-endpoint": rdzv_endpoint}
    passthrough |= {"--rdzv-backend": rdzv_backend, "--rdzv-id": rdzv_id}
    launch_args = [f"{flag}={value}" for flag, value in passthrough.items() if value is not None]
    if cluster:
        from dcloop.cluster import train_on_cluster

        workers = {"num_workers": num_workers, "cpus_per_worker": cpus_per_worker}
        settings = config.with_overrides(ws.config, "cluster", workers).cluster
        run = train_on_cluster(
            ws,
            recipe,
            data,
            name=name,
            resume=(resume_run or "latest") if resume else None,
            settings=settings,
        )
        _print_run(run, fmt)
        return
    run = train_run(
        ws,
        recipe,
        data,
        name=name,
        resume=(resume_run or "latest") if resume else None,
        nproc=nproc,
        launch_args=launch_args,
    )
    _print_run(run, fmt)


def _print_run(run: Any, fmt: Format) -> None:
    from dcloop.train._runs import run_summary, time_spent

    summary = run_summary(run)
    if fmt is Format.json:
        print_json(
            {**summary, **{k: run.metrics.get(k) for k in ("per_class", "confusion_matrix", "cost", "spent")}}
        )
        return
    _print_metrics(f"run {run.id[:12]} ({run.name}): test metrics", run.metrics)
    speed = {k: summary[k] for k in ("best_epoch", "epochs_run", "images_per_s", "wall_s")}
    if "tokens_per_s" in run.metrics:  # a text run: texts/s, tokens/s and the share of the measured peak
        speed = {"texts_per_s" if k == "images_per_s" else k: v for k, v in speed.items()}
        speed |= {k: run.metrics[k] for k in ("tokens_per_s", "mfu", "trainable_params", "plan_wall_s")}
    print_mapping("speed", speed)
    if (spent := time_spent(run.metrics)) is not None:
        print_mapping("time (budget and target)", spent)
    note(f"report: {summary['report']}")


def evaluate(
    run: str = typer.Argument(..., help="Run id or unique prefix, or `latest` (the newest run)."),
    data: str = typer.Option(None, "--data", help="Data set version to test on (default: the run's own)."),
    fmt: Format = _FORMAT,
) -> None:
    """Test a run's model on the held-out split of its data set version (or another version).

    Example: dcloop evaluate 3f2a9c --format json
    """
    from dcloop.train import evaluate as evaluate_run
    from dcloop.workspace import open_workspace

    metrics = evaluate_run(open_workspace(), run, data)
    if fmt is Format.json:
        print_json(metrics)
    else:
        _print_metrics(f"run {metrics['run'][:12]} on {metrics['dataset'][:12]}", metrics)


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(50, "--limit", min=1, help="Newest runs to show."),
    kind: str = typer.Option(None, "--kind", help="Only runs of this kind (train, trial, distill, ...)."),
    fmt: Format = _FORMAT,
) -> None:
    """List runs, newest first."""
    from dcloop.train._runs import list_runs
    from dcloop.workspace import open_workspace

    rows = list_runs(open_workspace(), limit=limit, kind=kind)
    if fmt is Format.json:
        print_json(rows)
        return
    # what fits 80 columns; `runs show` and --format json have every field
    columns = ["run", "name", "kind", "status", "accuracy", "f1_macro", "created_at"]
    headers = ["run", "name", "kind", "status", "acc", "f1", "created (UTC)"]
    print_table("runs", headers, [[r["run"][:12], *(r[c] for c in columns[1:])] for r in rows])


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id or unique prefix, or `latest` (the newest run)."),
    fmt: Format = _FORMAT,
) -> None:
    """Everything recorded about a run: metrics, lineage, config and per-epoch metrics."""
    from dcloop.train._runs import show_run, time_spent
    from dcloop.workspace import open_workspace

    details = show_run(open_workspace(), run)
    if fmt is Format.json:
        print_json(details)
        return
    print_mapping(
        f"run {details['run']}",
        {k: v for k, v in details.items() if k not in ("epochs", "metrics", "config", "lineage")},
    )
    if (spent := time_spent(details["metrics"])) is not None:
        print_mapping("time (budget and target)", spent)
    epochs = details["epochs"]
    if epochs:
        keys = [k for k in epochs[0] if k != "epoch"]
        print_table("epochs", ["epoch", *keys], [[e["epoch"], *(e.get(k) for k in keys)] for e in epochs])


@models_app.command("list")
def models_list(fmt: Format = _FORMAT) -> None:
    """The model zoo: name, modality, description and parameters of a 2-class instance (images:
    28x28 grayscale; text: its own vocabulary)."""
    from dcloop.train._models import describe_models

    rows = describe_models()
    if fmt is Format.json:
        print_json(rows)
    else:
        columns = ["name", "modality", "description", "params"]
        print_table("model zoo (images 1x28x28, 2 classes)", columns, [[r[c] for c in columns] for r in rows])


def register(app: typer.Typer) -> None:
    app.command("train", cls=FieldHelp)(train)
    app.command("evaluate")(evaluate)
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")
