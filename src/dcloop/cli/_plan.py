"""`dcloop plan ...`: data-center planning of large training and serving jobs (no workspace needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dcloop.cli._help import FieldHelp, field_help
from dcloop.cli._output import Format, note, print_json, print_mapping, print_table

plan_app = typer.Typer(
    help="Plan large jobs: time, accelerators, memory, energy, cost and CO2.", no_args_is_help=True
)

# Options shared by several commands (sizes accept K/M/B/T suffixes).
PRESET = typer.Option(
    None, "--preset", help="Model preset (gpt3-175b, llama2-70b, llama3.1-405b, bert-base...)."
)
PARAMS = typer.Option(
    None, "--params", help="Parameters, e.g. 70B (when no preset or shape); memory counts all."
)
ACTIVE = typer.Option(
    None, "--active-params", help="Parameters active per token (mixture of experts): FLOPs and time use them."
)
LAYERS = typer.Option(None, "--layers", help="Transformer layers.")
HIDDEN = typer.Option(None, "--hidden", help="Hidden size d_model.")
HEADS = typer.Option(None, "--heads", help="Attention heads.")
KV_HEADS = typer.Option(None, "--kv-heads", help="Key/value heads (grouped-query attention).")
VOCAB = typer.Option(None, "--vocab", help="Vocabulary size.")
SEQ_LEN = typer.Option(None, "--seq-len", help="Sequence length (overrides a preset's).")
FFN = typer.Option(None, "--ffn", help="MLP width (default 4 x hidden).")
GATED = typer.Option(None, "--gated/--no-gated", help="Gated (SwiGLU) MLP.")
ACCEL = typer.Option(None, "--accelerator", "-a", help=field_help("plan.accelerator"))
POWER = typer.Option(None, "--power-w", help="Power per accelerator in W (default: catalog TDP).")
PUE = typer.Option(None, "--pue", help=field_help("energy.pue"))
CARBON = typer.Option(None, "--carbon", help=field_help("energy.carbon_kg_per_kwh"))
PRICE = typer.Option(None, "--price", help=field_help("energy.price_per_kwh"))
HOUR_USD = typer.Option(None, "--accelerator-hour-usd", help=field_help("plan.accelerator_hour_usd"))
UTILIZATION = typer.Option(None, "--utilization", "--mfu", help=field_help("plan.utilization"))
GOODPUT = typer.Option(
    None, "--goodput", help="Share of wall time spent training (restarts, failures, evaluation); default 0.9."
)
ZERO = typer.Option(None, "--zero-stage", help="ZeRO stage 0-3 (default: 1, raised only if nothing fits).")
RECOMPUTE = typer.Option(
    None, "--recompute", help="none, selective or full recomputation (default: selective, full if needed)."
)
PRECISION = typer.Option(None, "--precision", help="fp32, tf32, fp16, bf16 or fp8 (int8 for serving).")
SPEC = typer.Option(None, "--spec", help="YAML file of inputs (keys = flag names with underscores).")
FMT = typer.Option(Format.table, "--format", help="table or json.")


def _settings() -> tuple[Any, Any, Any]:
    """(plan config, energy config, catalog): the workspace's when one is found, else defaults."""
    from dcloop.config import Config
    from dcloop.errors import NotFoundError
    from dcloop.plan import load_catalog
    from dcloop.workspace import open_workspace

    try:
        config = open_workspace().config
    except NotFoundError:
        config = Config()
    extra = [h.model_dump(exclude_none=True) for h in config.plan.hardware]
    return config.plan, config.energy, load_catalog(extra)


def _inputs(flags: dict[str, Any], *drop: str) -> dict[str, Any]:
    """A command's flags as plan inputs over its --spec file: `drop` left out, --carbon/--price renamed."""
    from dcloop.plan._spec import load_spec_file, merge

    values = {k: v for k, v in flags.items() if k not in {"spec", "fmt", "carbon", "price", *drop}}
    values.update(carbon_kg_per_kwh=flags["carbon"], price_per_kwh=flags["price"])
    spec = flags["spec"]
    return merge(load_spec_file(spec) if spec else {}, values)


def _show(title: str, summary: dict[str, Any], fmt: Format) -> None:
    """A plan as tables (a nested mapping gets its own), its fit hint and warnings as notes under them."""
    if fmt is Format.json:
        print_json(summary)
        return
    said = {"fit_hint", "warnings", "what_if"}
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict) and k not in said}
    print_mapping(title, flat)
    for key, value in summary.items():
        if isinstance(value, dict):
            print_mapping(key, value)
    _notes(summary)


def _notes(summary: dict[str, Any]) -> None:
    if summary.get("fit_hint"):
        note(f"does not fit: {summary['fit_hint']}")
    for warning in summary.get("warnings") or []:
        note(f"warning: {warning}")


@plan_app.command("train", cls=FieldHelp)
def train(
    preset: str = PRESET,
    params: str = PARAMS,
    active_params: str = ACTIVE,
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    kv_heads: int = KV_HEADS,
    vocab: int = VOCAB,
    seq_len: int = SEQ_LEN,
    ffn: int = FFN,
    gated_mlp: bool = GATED,
    tokens: str = typer.Option(None, "--tokens", help="Training tokens, e.g. 2T."),
    accelerator: str = ACCEL,
    count: int = typer.Option(None, "--count", "-n", help="Accelerators (default: the fewest that fit)."),
    utilization: float = UTILIZATION,
    goodput: float = GOODPUT,
    tokens_per_s: str = typer.Option(None, "--tokens-per-s", help="Measured tokens/s per accelerator."),
    model_flops_per_s: str = typer.Option(
        None, "--model-flops-per-s", help="Measured model FLOP/s per accelerator."
    ),
    hardware_flops_per_s: str = typer.Option(
        None,
        "--hardware-flops-per-s",
        help="Measured FLOP/s incl. recompute (8N rates: add --recompute full).",
    ),
    wall_days: float = typer.Option(None, "--wall-days", help="Wall time of a finished run (with --count)."),
    accelerator_hours: str = typer.Option(
        None, "--accelerator-hours", help="Accelerator-hours of a finished run."
    ),
    precision: str = PRECISION,
    recompute: str = RECOMPUTE,
    zero_stage: int = ZERO,
    tp: int = typer.Option(None, "--tp", help="Tensor-parallel degree."),
    pp: int = typer.Option(None, "--pp", help="Pipeline-parallel degree."),
    micro_batch: int = typer.Option(None, "--micro-batch", help="Sequences per micro-batch."),
    power_w: float = POWER,
    pue: float = PUE,
    carbon: float = CARBON,
    price: float = PRICE,
    accelerator_hour_usd: float = HOUR_USD,
    compare: str = typer.Option(
        None, "--compare", help="What-if accelerators, comma-separated (each at its own fewest without -n)."
    ),
    counts: str = typer.Option(None, "--counts", help="What-if counts, comma-separated."),
    report: Path = typer.Option(None, "--report", help="Write an HTML report (with the what-if plot) here."),
    spec: Path = SPEC,
    fmt: Format = FMT,
) -> None:
    """Plan a training run: FLOPs, wall time, accelerator-hours, energy, CO2, cost and memory.

    Example: dcloop plan train --preset llama2-70b --tokens 2T -a a100-80gb -n 2048 --tp 8 --pp 4
    """
    flags = dict(locals())
    from dataclasses import replace

    from dcloop.plan import plan_training, what_if
    from dcloop.plan._spec import build_training_spec

    plan_cfg, energy, catalog = _settings()
    training = build_training_spec(_inputs(flags, "compare", "counts", "report"), plan_cfg, energy)
    names = [n.strip() for n in compare.split(",")] if compare else []
    grid = [int(c) for c in counts.split(",")] if counts else None
    # --compare alone asks about accelerators, not about a count: no headline plan at a count nobody gave
    headline = not (names and grid is None and training.count is None)
    result = plan_training(training if headline else replace(training, accelerator=names[0]), catalog)
    rows = []
    if names or grid or report:
        if grid is None and headline:
            grid = [result.count * f for f in (1, 2, 4, 8)]
        rows = what_if(training, names or [result.accelerator.name], grid, catalog)
    summary: dict[str, Any] = result.summary() if headline else {"what_if_counts": WHAT_IF_OWN_COUNTS}
    if rows:
        summary["what_if"] = [r.summary() for r in rows]
    if report:
        from dcloop.plan._report import write_plan_report

        write_plan_report(report, result, rows)
    if fmt is Format.json:
        print_json(summary)
    else:
        if headline:
            _show("training plan", summary, fmt)
        if rows:
            columns = list(rows[0].summary())
            print_table("what if", columns, [list(r.summary().values()) for r in rows])
        if not headline:
            note(f"counts: {WHAT_IF_OWN_COUNTS}")
    if report:
        note(f"report: {report}")


WHAT_IF_OWN_COUNTS = (
    "each accelerator at the fewest that fit it, then 2x, 4x and 8x (-n or --counts fix them)"
)


@plan_app.command("fit", cls=FieldHelp)
def fit(
    days: float = typer.Option(..., "--days", help="Target wall time in days (the whole run)."),
    preset: str = PRESET,
    params: str = PARAMS,
    active_params: str = ACTIVE,
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    kv_heads: int = KV_HEADS,
    vocab: int = VOCAB,
    seq_len: int = SEQ_LEN,
    ffn: int = FFN,
    gated_mlp: bool = GATED,
    tokens: str = typer.Option(None, "--tokens", help="Training tokens (with a model: size the cluster)."),
    accelerator: str = ACCEL,
    count: int = typer.Option(None, "--count", "-n", help="Cluster size (without a model: largest model)."),
    utilization: float = UTILIZATION,
    goodput: float = GOODPUT,
    tokens_per_param: float = typer.Option(
        20.0, "--tokens-per-param", help="Compute-optimal tokens/parameter."
    ),
    precision: str = PRECISION,
    tp: int = typer.Option(None, "--tp", help="Tensor-parallel degree."),
    pp: int = typer.Option(None, "--pp", help="Pipeline-parallel degree."),
    zero_stage: int = ZERO,
    recompute: str = RECOMPUTE,
    power_w: float = POWER,
    pue: float = PUE,
    carbon: float = CARBON,
    price: float = PRICE,
    spec: Path = SPEC,
    fmt: Format = FMT,
) -> None:
    """Inverse questions: accelerators to finish in --days, or the largest compute-optimal model.

    Examples: dcloop plan fit --days 30 --preset llama3-70b --tokens 15T -a h100-sxm
              dcloop plan fit --days 30 -a h100-sxm -n 1024
    """
    flags = dict(locals())
    from dcloop.errors import ConfigError
    from dcloop.plan import accelerators_for_days, largest_compute_optimal_model
    from dcloop.plan._energy import Site
    from dcloop.plan._spec import build_training_spec, parse_inputs, site_inputs

    plan_cfg, energy, catalog = _settings()
    values = parse_inputs(_inputs(flags, "days", "tokens_per_param"))
    if not any(values.get(k) for k in ("preset", "params", "layers")):
        if values.get("count") is None:
            raise ConfigError(
                "Give a model with --tokens (to size the cluster) or --count (for the largest model)."
            )
        layout_keys = ("tp", "pp", "zero_stage", "recompute")
        layout = [f"--{k.replace('_', '-')}" for k in layout_keys if values.get(k) is not None]
        if layout:
            raise ConfigError(
                f"{' and '.join(layout)}: a parallel layout needs a given model, and the largest-model "
                "question has none. Give a model (--preset or --params with --tokens) to size its cluster."
            )
        mfu = values.get("utilization")
        best = largest_compute_optimal_model(
            values.get("accelerator") or plan_cfg.accelerator,
            values["count"],
            days,
            mfu if mfu is not None else plan_cfg.utilization,
            values.get("precision") or plan_cfg.precision,
            tokens_per_param,
            catalog,
            Site(**site_inputs(values, plan_cfg, energy)),
            **({"goodput": values["goodput"]} if values.get("goodput") is not None else {}),
        )
        _show("largest compute-optimal model", best.summary(), fmt)
        return
    training = build_training_spec(values, plan_cfg, energy)
    _show(f"accelerators for {days:g} days", accelerators_for_days(training, days, catalog).summary(), fmt)


@plan_app.command("serve", cls=FieldHelp)
def serve(
    preset: str = PRESET,
    active_params: str = ACTIVE,
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    kv_heads: int = KV_HEADS,
    vocab: int = VOCAB,
    seq_len: int = SEQ_LEN,
    ffn: int = FFN,
    gated_mlp: bool = GATED,
    accelerator: str = ACCEL,
    target_rps: float = typer.Option(None, "--target-rps", help="Requests per second to sustain."),
    prompt_tokens: int = typer.Option(
        None, "--prompt-tokens", help="Prompt tokens per request (default 512)."
    ),
    output_tokens: int = typer.Option(
        None, "--output-tokens", help="Generated tokens per request (default 256)."
    ),
    latency_s: float = typer.Option(None, "--latency-s", help="Largest end-to-end time per request."),
    batch: int = typer.Option(
        None, "--batch", help="Concurrent sequences per replica (default: most that fit)."
    ),
    tp: int = typer.Option(None, "--tp", help="Accelerators per replica (default: fewest that fit)."),
    precision: str = PRECISION,
    kv_precision: str = typer.Option(
        None, "--kv-precision", help="KV-cache precision (default: --precision)."
    ),
    power_w: float = POWER,
    pue: float = PUE,
    carbon: float = CARBON,
    price: float = PRICE,
    accelerator_hour_usd: float = HOUR_USD,
    spec: Path = SPEC,
    report: Path = typer.Option(
        None, "--report", help="Write an HTML report (with a batch-size sweep and its plot) here."
    ),
    fmt: Format = FMT,
) -> None:
    """Plan LLM serving: prefill/decode throughput, KV cache, accelerators for a rate, cost per 1M tokens.

    Example: dcloop plan serve --preset llama3-70b -a h100-sxm --target-rps 20 --latency-s 10
    """
    flags = dict(locals())
    from dcloop.plan import plan_serving
    from dcloop.plan._spec import build_serving_spec

    plan_cfg, energy, catalog = _settings()
    plan = plan_serving(build_serving_spec(_inputs(flags, "report"), plan_cfg, energy), catalog)
    _show("serving plan", plan.summary(), fmt)
    if report:
        from dcloop.plan._report import batch_sweep, write_serving_report

        write_serving_report(report, plan, batch_sweep(plan, catalog))
        note(f"report: {report}")


@plan_app.command("serve-image", cls=FieldHelp)
def serve_image(
    images_per_s: float = typer.Option(
        None, "--images-per-s", help="Measured images/s per accelerator or host."
    ),
    target_rps: float = typer.Option(None, "--target-rps", help="Images per second to sustain."),
    accelerator: str = ACCEL,
    max_load: float = typer.Option(
        None, "--max-load", help="Busiest an accelerator may run, in (0, 1] (0.8)."
    ),
    power_w: float = POWER,
    pue: float = PUE,
    carbon: float = CARBON,
    price: float = PRICE,
    accelerator_hour_usd: float = HOUR_USD,
    spec: Path = SPEC,
    fmt: Format = FMT,
) -> None:
    """Plan serving of an image model from its measured throughput.

    Example: dcloop plan serve-image --images-per-s 4000 --target-rps 10000 -a l4
    """
    flags = dict(locals())
    from dcloop.plan import plan_image_serving
    from dcloop.plan._spec import build_image_spec

    plan_cfg, energy, catalog = _settings()
    plan = plan_image_serving(build_image_spec(_inputs(flags), plan_cfg, energy), catalog)
    _show("image serving plan", plan.summary(), fmt)


@plan_app.command("hardware", cls=FieldHelp)
def hardware(fmt: Format = FMT) -> None:
    """The accelerator catalog: dense peak rates (never with-sparsity), memory, bandwidth, power, sources."""
    _, _, catalog = _settings()
    rows = [
        {
            "name": a.name,
            "label": a.label,
            **{f"{p}_tflops": a.tflops.get(p) for p in ("bf16", "fp16", "fp8", "int8")},
            "memory_gb": a.memory_gb,
            "memory_bw_gbs": a.memory_bw_gbs,
            "tdp_w": a.tdp_w,
            "interconnect_gbs": a.interconnect_gbs,
            "source": a.source,
        }
        for a in catalog.values()
    ]
    if fmt is Format.json:
        print_json(rows)
    else:
        columns = [c for c in rows[0] if c not in ("label", "source")]
        print_table("accelerators (dense peak)", columns, [[r[c] for c in columns] for r in rows])


@plan_app.command("validate", cls=FieldHelp)
def validate(fmt: Format = FMT) -> None:
    """Check the planner against published training runs (accelerator-hours, energy, CO2; error %)."""
    from dcloop.plan import validate_published

    results = validate_published()
    if fmt is Format.json:
        print_json([r.summary() for r in results])
        return
    columns = [
        "run",
        "hours pub.",
        "planned",
        "err",
        "MWh pub.",
        "planned",
        "err",
        "tCO2 pub.",
        "planned",
        "err",
        "MFU*",
        "pass",
    ]
    rows = [
        [
            r.name,
            _num(r.hours_published),
            _num(r.hours_planned),
            _pct(r.hours_error),
            _num(r.energy_published_mwh),
            _num(r.energy_planned_mwh),
            _pct(r.energy_error),
            _num(r.co2_published_t, 1),
            _num(r.co2_planned_t, 1),
            _pct(r.co2_error),
            f"{r.mfu_from_published_hours:.2f}",
            "yes" if r.passed else "NO",
        ]
        for r in results
    ]
    print_table("planner vs published runs", columns, rows)
    note(
        "hours: whole run, from the stated throughput and goodput; energy/CO2 from published hours; "
        "*steady-state MFU implied by published hours"
    )


def _pct(error: float | None) -> str:
    return "-" if error is None else f"{100 * error:+.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")
