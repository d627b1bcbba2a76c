"""ONNX export of a text classifier, its parity check, and the files that travel with it.

The deployable form of a text model is a folder: ``model.onnx`` with inputs ``input_ids`` and
``attention_mask`` (int64, (batch, sequence), both axes dynamic) and output ``logits`` (batch, K);
``tokenizer.json`` (the Hugging Face fast tokenizer the model was trained with); and ``model.json``
saying ``"modality": "text"``, the input names, dtype and max length, the pad id and the classes.
A server needs nothing else: it tokenizes, pads each batch to its longest member, and runs the file.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop.atomic import replacing, write_text
from dcloop.errors import DataError, DcloopError
from dcloop.optimize._onnx import MIN_OPSET, OUTPUT_NAME, onnx_session

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from torch import nn

log = logging.getLogger(__name__)

TEXT_INPUTS = ("input_ids", "attention_mask")
TOKENIZER_NAME = "tokenizer.json"
SPEC_NAME = "model.json"


def export_text_onnx(model: nn.Module, path: Path, max_length: int, opset: int = 17) -> Path:
    """Write text classifier ``model`` (``forward(input_ids, attention_mask) -> logits``) as one ONNX
    file at ``path`` (atomically), batch and sequence axes dynamic; return the path."""
    import torch

    if opset < MIN_OPSET:
        raise DcloopError(f"ONNX opset must be >= {MIN_OPSET}. Got {opset}.")
    path = Path(path)
    length = max(2, min(8, max_length))
    ids = torch.randint(0, embedding_rows(model), (2, length), generator=torch.Generator().manual_seed(0))
    # one padded row: a traced all-ones mask could let the model drop its masking branch
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    was_training = model.training
    model.eval()
    try:
        with eager_attention(model), replacing(path) as tmp:
            _run_export(model, (ids, mask), tmp, opset)
    finally:
        model.train(was_training)
    log.info("exported text ONNX model to %s (opset %d)", path, opset)
    return path


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Hugging Face modules switched to their eager attention for the export.

    The eager graph (MatMul, Softmax, MatMul) is the pattern ONNX Runtime's transformer optimizer
    fuses into one Attention node; the SDPA path exports as an op sequence it does not recognise.
    """
    configs = {id(c): c for c in (getattr(m, "config", None) for m in model.modules()) if c is not None}
    saved = {key: getattr(c, "_attn_implementation", None) for key, c in configs.items()}
    try:
        for key, c in configs.items():
            if saved[key] is not None:
                c._attn_implementation = "eager"
        yield
    finally:
        for key, c in configs.items():
            if saved[key] is not None:
                c._attn_implementation = saved[key]


def _run_export(model: nn.Module, example: tuple[Any, Any], target: Path, opset: int) -> None:
    import torch
    from torch.onnx.errors import OnnxExporterError, UnsupportedOperatorError

    axes = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                example,
                str(target),
                input_names=list(TEXT_INPUTS),
                output_names=[OUTPUT_NAME],
                dynamic_axes={TEXT_INPUTS[0]: axes, TEXT_INPUTS[1]: axes, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except (UnsupportedOperatorError, OnnxExporterError, RuntimeError) as error:
        lines = str(error).strip().splitlines()
        raise DcloopError(f"Cannot export the text model to ONNX: {lines[0] if lines else error}") from error


def embedding_rows(model: nn.Module) -> int:
    """Rows of the model's token embedding: the largest token id it accepts, plus one."""
    from torch import nn

    get = getattr(model, "get_input_embeddings", None)
    layer = get() if callable(get) else None
    if not isinstance(layer, nn.Embedding):
        named = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
        words = [m for n, m in named if n.endswith("word_embeddings")]
        layer = (words or [m for _, m in named] or [None])[0]  # type: ignore[list-item]
    if layer is None:
        raise DataError(f"{type(model).__name__} has no token embedding; it is not a text model.")
    return int(layer.num_embeddings)


def check_vocab(tokenizer: Tokenizer, model: nn.Module) -> None:
    """A tokenizer whose ids run past the model's embedding would index outside it: refuse it."""
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    rows = embedding_rows(model)
    if vocab > rows:
        raise DataError(
            f"The tokenizer has {vocab} tokens but the model's embedding has {rows} rows; "
            "use the tokenizer.json saved with the run."
        )


def pad_id(tokenizer: Tokenizer) -> int:
    """The id the tokenizer pads with (its padding setting, else 0: what the token cache pads with)."""
    padding = tokenizer.padding
    return int(padding["pad_id"]) if padding else 0


def text_batches(ids: np.ndarray, lengths: np.ndarray, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """ONNX feeds of padded token ids in order, each batch cut to its longest member."""
    for start in range(0, len(ids), batch_size):
        yield text_feed(ids[start : start + batch_size], lengths[start : start + batch_size])


def text_feed(ids: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """One batch of padded ids (B, L) and lengths (B,) as int64 inputs trimmed to the longest."""
    longest = max(1, int(lengths.max(initial=1)))
    cut = np.ascontiguousarray(ids[:, :longest], dtype=np.int64)
    mask = (np.arange(longest)[None, :] < lengths[:, None]).astype(np.int64)
    return {TEXT_INPUTS[0]: cut, TEXT_INPUTS[1]: mask}


def text_onnx_logits(session: Any, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits of padded token ids (N, L) with lengths (N,) from an ONNX session, in batches."""
    outputs = [session.run([OUTPUT_NAME], feed)[0] for feed in text_batches(ids, lengths, batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def torch_text_logits(
    model: nn.Module, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """The same batches through the PyTorch model (eval mode, no gradients)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = [
                model(*(torch.from_numpy(feed[name]) for name in TEXT_INPUTS)).float().numpy()
                for feed in text_batches(ids, lengths, batch_size)
            ]
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def check_text_parity(
    model: nn.Module, onnx_path: Path, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 64
) -> float:
    """Max absolute logit difference between PyTorch and ONNX Runtime on padded token ids."""
    expected = torch_text_logits(model, ids, lengths, batch_size)
    got = text_onnx_logits(onnx_session(Path(onnx_path)), ids, lengths, batch_size)
    return max_abs_diff(expected, got)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))


def write_text_bundle(folder: Path, tokenizer: Tokenizer, classes: list[str], max_length: int) -> None:
    """``tokenizer.json`` and ``model.json`` beside a variant's ``model.onnx``."""
    write_text(folder / TOKENIZER_NAME, tokenizer.to_str())
    spec = text_spec(classes, max_length, pad_id(tokenizer))
    write_text(folder / SPEC_NAME, json.dumps(spec, indent=2) + "\n")


def text_spec(classes: list[str], max_length: int, pad: int) -> dict[str, Any]:
    return {
        "modality": "text",
        "classes": list(classes),
        "input": {
            "names": list(TEXT_INPUTS),
            "dtype": "int64",
            "max_length": int(max_length),
            "pad_id": int(pad),
        },
        "output": OUTPUT_NAME,
        "tokenizer": TOKENIZER_NAME,
    }
