"""What a model version is registered from: an ONNX file, a trained run, or an optimized variant."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dcloop.errors import ConfigError, NotFoundError
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs
from dcloop.workspace import Workspace


def resolve_source(
    ws: Workspace, source: str, classes: list[str] | None, dataset_id: str | None
) -> dict[str, Any]:
    """ModelVersion fields (plus ``onnx_path``, ``default_name`` and, for an export, ``exported``:
    a temporary folder to delete) of an ONNX file, a run (exported now) or an optimized variant."""
    path = Path(source)
    if path.suffix == ".onnx" or path.is_file():
        if not path.is_file():
            raise NotFoundError(f"No ONNX file {path}.")
        classes = classes or _spec_classes(path.parent)
        if not classes:
            raise ConfigError(f"Registering the ONNX file {path} needs its class names (--classes a,b,...).")
        return dict(
            default_name=path.stem,
            onnx_path=path,
            classes=list(classes),
            run_id=None,
            dataset_id=dataset_id,
            variant_id=None,
            method="file",
            metrics={},
            lineage={"source": str(path.resolve())},
        )
    try:
        run = store_runs.get_run(ws.store, source)
    except NotFoundError:
        return _from_variant(ws, source)
    from dcloop.optimize import export_onnx
    from dcloop.train import load_trained

    trained = load_trained(ws, run.id)
    spec = trained.spec
    classes = list(spec.get("classes", trained.dataset.classes))
    folder = Path(tempfile.mkdtemp(prefix="dcloop-export-"))
    out = folder / "model.onnx"
    try:
        if spec.get("modality", "image") == "text":  # the ONNX file with its tokenizer and model.json
            from dcloop.optimize import export_text_onnx, write_text_bundle

            length = int(spec["input"]["max_length"])
            export_text_onnx(trained.model, out, max_length=length)
            write_text_bundle(folder, trained.tokenizer, classes, length)
        else:
            export_onnx(trained.model, out, input_shape=trained.dataset.image_shape)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return dict(
        exported=folder,
        default_name=trained.dataset.record.name,
        onnx_path=out,
        classes=classes,
        run_id=run.id,
        dataset_id=run.dataset_id,
        variant_id=None,
        method="export",
        metrics=dict(run.metrics),
        lineage={"run": run.id, "model": run.model, "run_lineage": run.lineage},
    )


def _from_variant(ws: Workspace, ref: str) -> dict[str, Any]:
    try:
        from dcloop.optimize import get_variant
    except ImportError:
        raise NotFoundError(f"No run, variant or ONNX file {ref!r}.") from None
    try:
        variant = get_variant(ws, ref)
    except NotFoundError:
        raise NotFoundError(f"No run, variant or ONNX file {ref!r}. See `dcloop runs list`.") from None
    run = store_runs.get_run(ws.store, variant.run_id)
    dataset = store_datasets.get_dataset(ws.store, run.dataset_id)
    return dict(
        default_name=dataset.name,
        onnx_path=variant.onnx_path,
        classes=list(dataset.classes),
        run_id=run.id,
        dataset_id=run.dataset_id,
        variant_id=variant.id,
        method=variant.method,
        metrics=dict(variant.metrics),
        lineage={"run": run.id, "variant": variant.id, "params": variant.params},
    )


def _spec_classes(folder: Path) -> list[str] | None:
    """The class names a deployable folder's ``model.json`` lists (a text bundle does), if any."""
    try:
        spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    classes = spec.get("classes") if isinstance(spec, dict) else None
    if isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes):
        return list(classes)
    return None
