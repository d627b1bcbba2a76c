"""Transformer graph fusion and dynamic int8 quantization of an exported text model (ONNX Runtime).

Fusion: ONNX Runtime's transformer optimizer (model type "bert") rewrites the exported op soup into
its fused CPU kernels: EmbedLayerNormalization, one Attention node per layer, SkipLayerNormalization
and (Bias)Gelu; the file stays fp32 and gives the same logits.

Dynamic, not static, int8: for BERT-class models activations vary widely per input, so ranges are
computed per call, and the weight-heavy MatMul, Attention and embedding Gather nodes run as int8
(weights stored int8: about 4x smaller). The CNN path calibrates static ranges instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dcloop.atomic import replacing
from dcloop.errors import DcloopError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def bert_dims(model: nn.Module) -> tuple[int, int] | None:
    """(attention heads, hidden size) of the first BERT-shaped configuration inside ``model``."""
    for module in model.modules():
        config = getattr(module, "config", None)
        heads = getattr(config, "num_attention_heads", None)
        hidden = getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int):
            return heads, hidden
    return None


def fuse_transformer(fp32_path: Path, out_path: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Write the fused fp32 graph of ``fp32_path`` to ``out_path``; return the fused-node counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        # opt_level 0: the fusions run on the graph as exported, so the file stays portable across
        # CPUs (ONNX Runtime's own graph optimizations still run when a session loads it)
        fused = optimize_model(
            str(fp32_path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
    except (ValueError, RuntimeError, AssertionError) as error:
        raise DcloopError(f"ONNX Runtime's transformer optimizer failed on {fp32_path}: {error}") from error
    counts = {op: int(n) for op, n in fused.get_fused_operator_statistics().items() if n}
    with replacing(Path(out_path)) as tmp:
        fused.save_model_to_file(str(tmp), use_external_data_format=False)
    log.info("fused transformer graph written to %s: %s", out_path, counts)
    return counts


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quantize_dynamic_int8(fp32_path: Path, out_path: Path, *, per_channel: bool) -> Path:
    """Write a dynamic int8 copy of ``fp32_path`` (fused or not) to ``out_path``; return the path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic advises pre-processing (shape inference + graph optimization) on the root logger;
    # the graph given here is already ONNX Runtime's optimized one, so the advice is dropped
    advice = _DropMessage("Please consider to run pre-processing")
    logging.getLogger().addFilter(advice)
    try:
        with replacing(Path(out_path)) as tmp:
            quantize_dynamic(
                str(fp32_path),
                str(tmp),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                # the fused nodes live in ONNX Runtime's own domain, where shape inference finds no
                # types; their outputs are float32
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        logging.getLogger().removeFilter(advice)
    log.info("dynamic int8 model written to %s", out_path)
    return Path(out_path)
