"""Stored predictions out to a labelling file: what `dcloop feedback import` reads back.

The CSV has the import's two columns first (``prediction_id``, ``label``: the latest label, or empty
for a labeller to fill), then what a labeller decides by: the predicted class and its confidence, the
model version, the time, and the input: the path of a PNG written for each kept image (with
``images``) or the text itself. Rows a labeller leaves without a label are skipped on import.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from dcloop.atomic import replacing, replacing_dir
from dcloop.errors import ConfigError
from dcloop.store import Store
from dcloop.store.predictions import list_predictions, prediction_pixels, prediction_text

COLUMNS = [
    "prediction_id",
    "label",
    "predicted",
    "confidence",
    "model",
    "created_at",
    "endpoint",
    "input",
]
Order = Literal["time", "confidence"]


def export_predictions(
    store: Store,
    *,
    model_name: str | None = None,
    since: datetime | None = None,
    unlabelled: bool = False,
    order: Order = "time",
    limit: int | None = None,
    images: Path | None = None,
) -> list[dict[str, Any]]:
    """Kept predictions as export rows (``COLUMNS``), oldest first or least confident first.

    ``images``: a new folder that receives ``<prediction_id>.png`` for every row whose image is still
    stored (the ``input`` column gives its path); it is written whole or not at all.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1. Got {limit}.")
    images = images.resolve() if images is not None else None  # the file's paths work from anywhere
    if images is not None and images.exists() and any(images.iterdir()):
        raise ConfigError(f"{images} is not empty; give a new folder for the images.")
    kept = list_predictions(
        store,
        model_name=model_name,
        since=since,
        labelled=False if unlabelled else None,
        with_inputs=True,
        limit=limit if order == "time" else None,
    )
    if order == "confidence":
        kept.sort(key=lambda p: p.confidence)  # stable: equal confidence stays oldest first
        kept = kept[:limit]
    rows = [
        {
            "prediction_id": p.id,
            "label": p.label or "",
            "predicted": p.pred_label,
            "confidence": round(p.confidence, 6),
            "model": f"{p.model_name}@{p.model_version}",
            "created_at": p.created_at.isoformat(timespec="seconds"),
            "endpoint": p.endpoint,
            "input": prediction_text(p) or "",
        }
        for p in kept
    ]
    if images is not None:
        with replacing_dir(images) as folder:
            for row, prediction in zip(rows, kept, strict=True):
                pixels = prediction_pixels(prediction)
                if pixels is not None:
                    _png(pixels).save(folder / f"{prediction.id}.png")
                    row["input"] = str(images / f"{prediction.id}.png")
            if images.exists():
                images.rmdir()  # empty (checked above): the rename needs the name free
    return rows


def write_rows(rows: list[dict[str, Any]], fmt: Literal["csv", "jsonl"], out: Path | None) -> str | None:
    """The rows as CSV (header ``COLUMNS``) or JSON lines: returned when ``out`` is None, else written
    to ``out`` atomically (and None returned)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(row) + "\n" for row in rows)
    if out is None:
        return text
    with replacing(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return None


def _png(pixels: np.ndarray) -> Image.Image:
    """uint8 (C, H, W) as an RGB image with 3 channels, else grayscale (the first channel)."""
    if pixels.shape[0] == 3:
        return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), "RGB")
    return Image.fromarray(np.ascontiguousarray(pixels[0]), "L")
