"""`dcloop predict`: classify image (or text) files with a registered model, as the server would."""

from __future__ import annotations

import csv
import enum
import sys
from typing import Any

import typer

from dcloop.cli._output import note, print_json, print_table


class PredictFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def predict(
    paths: list[str] = typer.Argument(
        ...,
        metavar="FILES...|FOLDER",
        help="Image files (a text model: UTF-8 text files, one text each) and/or folders (searched recursively).",
    ),
    model: str = typer.Option(
        None, "--model", help="NAME, NAME@ALIAS or NAME@VERSION (default: serve.model, else the champion)."
    ),
    fmt: PredictFormat = typer.Option(PredictFormat.table, "--format", help="table, json or csv."),
) -> None:
    """Classify images with a registered model: the server's ONNX Runtime session and image decoder.
    A text model reads each file as one UTF-8 text and tokenizes it as the server does.

    Nothing is stored; send images to a running `dcloop serve` to log predictions for feedback.
    Exits 1 when a file could not be read (its row says why).

    Examples:
      dcloop predict photos/
      dcloop predict cat.png dog.jpg --model pets@challenger --format json
      dcloop predict photos/ --format csv > predictions.csv
      dcloop predict reviews/*.txt --model reviews@champion
    """
    from dcloop.deploy._batch import predict_files
    from dcloop.workspace import open_workspace

    result = predict_files(open_workspace(), paths, model)
    if fmt is PredictFormat.json:
        print_json({"model": result.model, "predictions": [_row(r) for r in result.rows]})
    elif fmt is PredictFormat.csv:
        _write_csv(result.classes, result.rows)
    else:
        failed = result.failed > 0
        columns = ["file", "label", "confidence"] + (["error"] if failed else [])
        rows = [[r.file, r.label, r.confidence] + ([r.error] if failed else []) for r in result.rows]
        print_table(f"{result.model}: {len(result.rows)} files", columns, rows)
    if result.failed:
        note(f"{result.failed} of {len(result.rows)} files could not be read (see their error).")
        raise typer.Exit(1)


def _row(r: Any) -> dict[str, Any]:
    return {
        "file": r.file,
        "label": r.label,
        "confidence": r.confidence,
        "probabilities": r.probabilities,
        "error": r.error,
    }


def _write_csv(classes: list[str], rows: list[Any]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["file", "label", "confidence", *(f"p_{c}" for c in classes), "error"])
    for r in rows:
        probs = [r.probabilities.get(c) for c in classes]
        out.writerow([r.file, r.label or "", _num(r.confidence), *map(_num, probs), r.error or ""])


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
