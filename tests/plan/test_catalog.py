"""The hardware catalog: sourced dense figures, lookups with suggestions, workspace additions."""

from __future__ import annotations

import pytest

from dcloop.config import validate
from dcloop.errors import ConfigError, NotFoundError
from dcloop.plan._catalog import get_accelerator, load_catalog

REQUIRED = {
    "v100-sxm2-32gb",
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h100-pcie",
    "h200",
    "h800",
    "b200",
    "mi300x",
    "l4",
    "l40s",
    "tpu-v2",
    "tpu-v3",
    "tpu-v4",
    "tpu-v5e",
    "tpu-v5p",
}


def test_catalog_has_every_required_chip_and_a_source_for_every_number() -> None:
    catalog = load_catalog()
    assert set(catalog) >= REQUIRED
    for chip in catalog.values():
        for field in ("tflops", "memory_gb", "memory_bw_gbs", "tdp_w", "interconnect_gbs"):
            if getattr(chip, field):
                assert len(chip.source_of(field)) > 20, (chip.name, field)


def test_peak_rates_are_dense_not_sparse() -> None:
    catalog = load_catalog()
    # Dense datasheet values (the with-sparsity figures are exactly twice these).
    assert catalog["h100-sxm"].peak_flops("bf16") == 989e12
    assert catalog["h100-sxm"].peak_flops("fp8") == 1979e12
    assert catalog["a100-80gb"].peak_flops("bf16") == 312e12
    assert catalog["mi300x"].peak_flops("bf16") == pytest.approx(1307.4e12)
    assert catalog["l4"].peak_flops("bf16") == 121e12
    # H800: the H100 SXM's compute and memory with NVLink cut to 400 GB/s; TPU v2: Jouppi et al. 2020
    h800, h100 = catalog["h800"], catalog["h100-sxm"]
    assert dict(h800.tflops) == dict(h100.tflops) and h800.memory_gb == h100.memory_gb == 80
    assert h800.interconnect_gbs == 400 and "DeepSeek-V3" in h800.source_of("interconnect_gbs")
    assert catalog["tpu-v2"].peak_flops("bf16") == 46e12 and catalog["tpu-v2"].memory_gb == 16
    for chip in catalog.values():
        if "fp8" in chip.tflops and "bf16" in chip.tflops:
            assert chip.tflops["fp8"] == pytest.approx(2 * chip.tflops["bf16"], rel=0.02), chip.name


def test_unknown_accelerator_suggests_close_names() -> None:
    with pytest.raises(NotFoundError, match=r"Unknown accelerator 'h100-sxn'.*Did you mean 'h100-sxm'"):
        get_accelerator("h100-sxn")


def test_missing_precision_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"v100-sxm2-32gb has no bf16 peak rate .*fp16, fp32"):
        get_accelerator("v100-sxm2-32gb").peak_flops("bf16")


def test_workspace_hardware_is_validated_and_added() -> None:
    entry = {
        "name": "my-npu",
        "tflops": {"bf16": 500},
        "memory_gb": 64,
        "memory_bw_gbs": 2000,
        "tdp_w": 450,
        "source": "vendor sheet rev 3",
    }
    config = validate({"plan": {"hardware": [entry]}})
    catalog = load_catalog([h.model_dump(exclude_none=True) for h in config.plan.hardware])
    assert catalog["my-npu"].peak_flops("bf16") == 500e12
    with pytest.raises(ConfigError, match=r"`plan.hardware.0.memory_gb` in dcloop.yaml must satisfy"):
        validate({"plan": {"hardware": [{**entry, "memory_gb": -1}]}})
    with pytest.raises(ConfigError, match=r"`plan.hardware.0.source` in dcloop.yaml is required"):
        validate({"plan": {"hardware": [{k: v for k, v in entry.items() if k != "source"}]}})
    with pytest.raises(ConfigError, match=r"tflops.bf16 must be a positive number. Got 0"):
        load_catalog([{**entry, "tflops": {"bf16": 0}}])
