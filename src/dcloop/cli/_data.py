"""`dcloop data ...`: import sources, prepare versions, list and show them."""

from __future__ import annotations

from typing import Any

import typer

from dcloop.cli._output import Format, print_json, print_mapping, print_table

data_app = typer.Typer(help="Import sources and prepare versioned data sets.", no_args_is_help=True)

_FORMAT = typer.Option(Format.table, "--format", help="table or json.")


def _summary(record: Any) -> dict[str, Any]:
    """What `data import`/`prepare`/`show` print: the version, its counts and its cleaning report."""
    return {
        "version": record.id,
        "short_id": record.short_id,
        "name": record.name,
        "modality": record.modality,
        "created_at": record.created_at,
        "classes": record.classes,
        "shape": record.shape,
        "counts": {split: sum(by_class.values()) for split, by_class in record.counts.items()},
        "class_counts": record.counts,
        "cleaning": record.cleaning.get("counts", {}),
        "cleaning_examples": record.cleaning.get("examples", {}),
        "quarantined": record.cleaning.get("quarantined", []),
        "long_texts": record.cleaning.get("long"),
        "label_variants": record.cleaning.get("label_variants", {}),
        "parent_id": record.parent_id,
        "source": record.source,
        "path": record.path,
    }


def _print_version(record: Any, fmt: Format, title: str) -> None:
    summary = _summary(record)
    if fmt is Format.json:
        print_json(summary)
        return
    fields = {
        "version": summary["version"],
        "name": summary["name"],
        "modality": summary["modality"],
        "classes": ", ".join(summary["classes"]),
    }
    if record.modality == "image":
        fields["shape (C, H, W)"] = "x".join(str(d) for d in summary["shape"])
    long = summary["long_texts"]
    if long is not None:
        fields[f"texts over {long['max_chars']} chars"] = (
            f"{long['count']} (kept; the tokenizer truncates them)"
        )
    for label, spellings in summary["label_variants"].items():
        fields[f"label {label!r} spelled"] = ", ".join(repr(s) for s in spellings)
    fields["parent"] = summary["parent_id"] or ""
    print_mapping(title, fields)
    rows = [[split, *counts.values(), sum(counts.values())] for split, counts in record.counts.items()]
    print_table("examples per split", ["split", *record.classes, "total"], rows)
    examples = summary["cleaning_examples"]
    print_table(
        "cleaning",
        ["rule", "count", "examples"],
        [
            [rule, n, "; ".join(e["path"] for e in examples.get(rule, []))]
            for rule, n in summary["cleaning"].items()
        ],
    )
    _print_quarantined(summary["quarantined"], record.id)


def _print_quarantined(items: list[dict[str, str]], version: str, most: int = 20) -> None:
    """Each file the source could not use, with why; the rest are in `data show --format json`."""
    if not items:
        return
    rows = [[item["path"], item["rule"], item["reason"]] for item in items[:most]]
    if len(items) > most:
        more = f"... {len(items) - most} more: dcloop data show {version[:12]} --format json"
        rows.append([more, "", ""])
    print_table("quarantined files", ["path", "rule", "reason"], rows)


@data_app.command("import")
def import_(
    source: str = typer.Argument(..., help="A built-in source (see `dcloop data sources`) or a path."),
    name: str = typer.Option(None, "--name", help="Name to record it under (default: derived from SOURCE)."),
    classes: str = typer.Option(
        None, "--classes", help="Keep only these classes: names or indices, comma-separated."
    ),
    text_column: str = typer.Option(
        None,
        "--text-column",
        help="Text column of a CSV/TSV/JSONL/Parquet source (default: data.text_column).",
    ),
    label_column: str = typer.Option(
        None, "--label-column", help="Label column of a text table (default: data.label_column)."
    ),
    fmt: Format = _FORMAT,
) -> None:
    """Record a source and prepare a versioned data set from it with the workspace's `data` config.

    Examples: dcloop data import animal-mnist --classes cat,dog
              dcloop data import ./pets/train --name pets
              dcloop data import ./mnist/train-images-idx3-ubyte.gz
              dcloop data import fortunes --classes computers,science,work
              dcloop data import ./reviews.csv --text-column review --label-column sentiment
    """
    from dcloop.data import import_source
    from dcloop.workspace import open_workspace

    record = import_source(
        open_workspace(),
        source,
        name=name,
        classes=classes,
        text_column=text_column,
        label_column=label_column,
    )
    _print_version(record, fmt, f"prepared {record.short_id}")


@data_app.command("prepare")
def prepare(
    name: str = typer.Argument(None, help="A recorded source (default: the latest imported)."),
    fmt: Format = _FORMAT,
) -> None:
    """Prepare a recorded source again with the current config (same input and config: same version).

    Example: dcloop data prepare animal-mnist-cat-dog
    """
    from dcloop.data import prepare_dataset
    from dcloop.workspace import open_workspace

    record = prepare_dataset(open_workspace(), name)
    _print_version(record, fmt, f"prepared {record.short_id}")


@data_app.command("sources")
def sources(fmt: Format = _FORMAT) -> None:
    """List the kinds of source `dcloop data import` reads."""
    from dcloop.data._prepare import describe_sources

    described = describe_sources()
    if fmt is Format.json:
        print_json(described)
    else:
        print_table("data sources", ["source", "description"], list(described.items()))


@data_app.command("list")
def list_(fmt: Format = _FORMAT) -> None:
    """List prepared data set versions, oldest first."""
    from dcloop.data import list_datasets
    from dcloop.workspace import open_workspace

    summaries = [_summary(r) for r in list_datasets(open_workspace())]
    if fmt is Format.json:
        print_json(summaries)
        return
    columns = ["version", "name", "modality", "created", "classes", "train", "val", "test", "parent"]
    rows = [
        [
            s["short_id"],
            s["name"],
            s["modality"],
            f"{s['created_at']:%Y-%m-%d %H:%M}",
            len(s["classes"]),
            *s["counts"].values(),
            (s["parent_id"] or "")[:12],
        ]
        for s in summaries
    ]
    print_table("data set versions", columns, rows)


@data_app.command("show")
def show(
    version: str = typer.Argument(None, help="Version id, unique id prefix, or name (newest of it)."),
    fmt: Format = _FORMAT,
) -> None:
    """Show one version: classes, counts per split and class, cleaning report, provenance.

    Example: dcloop data show animal-mnist-cat-dog --format json
    """
    from dcloop.data import get_dataset
    from dcloop.workspace import open_workspace

    record = get_dataset(open_workspace(), version)
    _print_version(record, fmt, f"data set version {record.short_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
