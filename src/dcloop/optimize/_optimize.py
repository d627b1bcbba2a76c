"""`optimize`: candidate deployable variants of a trained run, measured on one test split.

Read top to bottom: load the run's model and data set, export the fp32 ONNX baseline and assert its
parity with PyTorch, make each requested variant (static int8, pruned + fine-tuned, distilled
student) in a staging folder, measure every one the same way under ONNX Runtime, pick the
recommended one by the configured rule, then move the folders into place and record all variants
in one transaction, and write the report. A failure leaves nothing behind.

The run's modality (its model.json) picks the candidate maker and how test examples become ONNX
inputs; text adds the fused transformer graph beside its export, and its int8 is dynamic.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.config import OptimizeConfig
from dcloop.errors import ConfigError, DataError, unknown_name
from dcloop.optimize import _select
from dcloop.optimize._candidates import ONNX_NAME, Candidate, make_candidates
from dcloop.optimize._measure import TestInputs
from dcloop.store.variants import VariantRecord, add_variants

if TYPE_CHECKING:
    from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
METHODS = ("onnx", "int8", "prune", "distill")
# methods each modality's candidate maker knows (text models are not channel-pruned)
MODALITY_METHODS = {"image": METHODS, "text": ("onnx", "int8", "distill")}


@dataclass(frozen=True)
class OptimizationResult:
    """The variants of one optimization (baseline first), the recommended one and the report."""

    id: str
    run_id: str
    variants: list[VariantRecord]
    recommended: VariantRecord
    rule: str
    report_path: Path


def optimize(workspace: Workspace, run_ref: str, methods: Sequence[str] | None = None) -> OptimizationResult:
    """Make, measure and record candidate variants of run ``run_ref`` (id or unique prefix)."""
    from dcloop.train import load_trained

    cfg = workspace.config.optimize
    requested = [str(m) for m in (methods if methods is not None else cfg.methods)]
    check_methods(requested)  # unknown names fail before the run is loaded
    trained = load_trained(workspace, run_ref)
    data = trained.dataset
    modality = str(trained.spec.get("modality", "image"))
    chosen = check_methods(requested, modality, explicit=methods is not None)
    if "distill" in chosen and modality == "image":
        from dcloop.train import list_models

        if cfg.student not in list_models():
            raise unknown_name("student model (optimize.student)", cfg.student, list_models())
    x_test, y_test = data.arrays("test")
    if len(x_test) == 0:
        raise DataError(
            f"Data set version {data.id[:12]} has an empty test split; variants cannot be compared."
        )
    optimization_id = uuid.uuid4().hex
    root = workspace.artifacts_dir / "variants"
    staging = root / f".staging-{optimization_id}"
    try:
        candidates, inputs = _candidates(trained, modality, x_test, chosen, cfg, staging)
        measured = [_measure(c, inputs, y_test, data.classes, cfg) for c in candidates]
        records = _records(trained.run.id, optimization_id, measured, cfg)
        for candidate in measured:
            (root / candidate.id).parent.mkdir(parents=True, exist_ok=True)
            candidate.folder.rename(root / candidate.id)
        try:
            add_variants(workspace.store, records)
        except BaseException:
            for candidate in measured:
                shutil.rmtree(root / candidate.id, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    from dcloop.optimize._report import write_optimization_report

    recommended = next(r for r in records if r.metrics.get("recommended"))
    rule = _select.rule_text(cfg.select.max_accuracy_drop, cfg.select.objective)
    report = workspace.reports_dir / f"optimize-{optimization_id[:12]}.html"
    write_optimization_report(report, trained.run.id, records, recommended, rule)
    _track(workspace, trained.run.id, trained.run.name, optimization_id, records, report)
    return OptimizationResult(optimization_id, trained.run.id, records, recommended, rule, report)


def _track(
    workspace: Workspace,
    run_id: str,
    run_name: str,
    optimization_id: str,
    records: list[VariantRecord],
    report: Path,
) -> None:
    """Mirror the optimization to MLflow: a parent run with the report, one child per variant."""
    from dcloop.train._tracking import record, tracker_for

    tracker = tracker_for(workspace)
    tags = {"dcloop.run_id": run_id, "dcloop.optimization_id": optimization_id}
    methods = ",".join(r.method for r in records)
    parent = record(
        tracker, f"optimize {run_name}", "optimize", params={"methods": methods}, tags=tags, files=[report]
    )
    if parent is None:
        return
    for variant in records:
        record(
            tracker,
            f"{variant.method} {variant.short_id}",
            "variant",
            params={"method": variant.method, **variant.params},
            metrics=variant.metrics,
            tags={**tags, "dcloop.variant_id": variant.id},
            parent=parent,
        )


def check_methods(methods: list[str], modality: str = "image", explicit: bool = True) -> list[str]:
    """Known, de-duplicated methods in canonical order; the fp32 ONNX baseline is always included.

    A method the modality has no maker for is an error when asked for on the command line
    (``explicit``) and skipped, with a log line, when it comes from `optimize.methods`."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(
            f"--methods must be a comma list of {', '.join(METHODS)}. Got unknown {', '.join(unknown)}."
        )
    supported = MODALITY_METHODS[modality]
    unsupported = [m for m in METHODS if m in methods and m not in supported]
    if unsupported and explicit:
        raise ConfigError(
            f"--methods {', '.join(unsupported)} does not apply to {modality} models; "
            f"they take {', '.join(supported)}."
        )
    if unsupported:
        log.info("optimize.methods: %s skipped (not for %s models)", ", ".join(unsupported), modality)
    return [m for m in METHODS if m == "onnx" or (m in methods and m in supported)]


def _candidates(
    trained: Any, modality: str, x_test: Any, chosen: list[str], cfg: OptimizeConfig, staging: Path
) -> tuple[list[Candidate], TestInputs]:
    """The modality's candidates, and the test split as the ONNX inputs every variant is measured on."""
    from dcloop.optimize._measure import image_inputs, text_inputs

    if modality != "text":
        made = make_candidates(trained.model, trained.run.config, trained.dataset, chosen, cfg, staging)
        return made, image_inputs(x_test)
    from dcloop.data import encode_texts
    from dcloop.optimize._text_candidates import make_text_candidates

    tokenizer = trained.tokenizer
    if tokenizer is None:
        raise DataError(f"Run {trained.run.id[:12]} is a text run but its folder has no tokenizer.json.")
    ids, lengths = encode_texts(tokenizer, list(x_test), int(trained.spec["input"]["max_length"]))
    made = make_text_candidates(trained, tokenizer, ids, lengths, chosen, cfg, staging)
    return made, text_inputs(ids, lengths)


def _measure(
    candidate: Candidate, inputs: TestInputs, y_test: Any, classes: list[str], cfg: OptimizeConfig
) -> Candidate:
    from dcloop.optimize._measure import measure_onnx

    metrics, predictions = measure_onnx(
        candidate.folder / ONNX_NAME,
        inputs,
        y_test,
        classes,
        threads=cfg.threads,
        latency_runs=cfg.latency_runs,
        throughput_batches=cfg.throughput_batches,
    )
    metrics.update(params=candidate.num_params, macs=candidate.macs, flops=2 * candidate.macs)
    candidate.metrics.update(metrics, _predictions=predictions)
    return candidate


def _records(
    run_id: str, optimization_id: str, measured: list[Candidate], cfg: OptimizeConfig
) -> list[VariantRecord]:
    baseline = measured[0]
    base_pred = baseline.metrics["_predictions"]
    for candidate in measured:
        m = candidate.metrics
        m["accuracy_drop"] = _select.accuracy_drop(baseline.metrics, m)
        m["agreement"] = float((m.pop("_predictions") == base_pred).mean())
    chosen = _select.select(
        [c.metrics for c in measured], 0, cfg.select.max_accuracy_drop, cfg.select.objective
    )
    now = datetime.now(UTC)
    records = []
    for index, c in enumerate(measured):
        c.metrics["recommended"] = index == chosen
        path = c.folder / ONNX_NAME
        final = c.folder.parent.parent / c.id / ONNX_NAME
        records.append(
            VariantRecord(
                id=c.id,
                run_id=run_id,
                optimization_id=optimization_id,
                method=c.method,
                params=c.params,
                metrics=c.metrics,
                onnx_path=str(final),
                onnx_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                created_at=now,
                parent_variant_id=c.parent,
            )
        )
    return records
