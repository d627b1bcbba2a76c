"""Text ONNX export on a tiny BERT: parity at several shapes, truly dynamic axes, the fused fp32
graph, dynamic int8, the bundle beside model.onnx, and a tokenizer/model mismatch refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dcloop.errors import DataError, DcloopError
from dcloop.optimize._onnx import onnx_session
from dcloop.optimize._text_onnx import (
    check_text_parity,
    check_vocab,
    export_text_onnx,
    max_abs_diff,
    text_onnx_logits,
    torch_text_logits,
    write_text_bundle,
)
from dcloop.optimize._text_quantize import bert_dims, fuse_transformer, quantize_dynamic_int8

VOCAB = 100
MAX_LENGTH = 32


class TinyBert(nn.Module):
    """A 2-layer, width-32 BERT with mean pooling and a linear head: the text zoo's contract."""

    def __init__(self, num_classes: int = 3) -> None:
        from transformers import BertConfig, BertModel

        super().__init__()
        config = BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(32, num_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def _tokenizer(size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1} | {f"w{i}": i for i in range(2, size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def _batch(seed: int, n: int, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded ids (n, MAX_LENGTH) and lengths in [1, longest], one row at exactly ``longest``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, longest + 1, size=n).astype(np.int32)
    lengths[0] = longest
    ids = rng.integers(2, VOCAB, size=(n, MAX_LENGTH)).astype(np.int32)
    ids[np.arange(MAX_LENGTH)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyBert, Path]:
    torch.manual_seed(0)
    model = TinyBert().eval()
    path = export_text_onnx(model, tmp_path_factory.mktemp("text") / "model.onnx", MAX_LENGTH)
    return model, path


@pytest.mark.parametrize(("n", "longest"), [(3, 7), (17, 29)])
def test_export_matches_torch_at_two_shapes(exported: tuple[TinyBert, Path], n: int, longest: int) -> None:
    model, path = exported
    ids, lengths = _batch(n + longest, n, longest)
    assert check_text_parity(model, path, ids, lengths, batch_size=n) <= 1e-5
    logits = text_onnx_logits(onnx_session(path), ids, lengths, batch_size=n)
    assert logits.shape == (n, 3) and np.isfinite(logits).all()


@settings(max_examples=8, deadline=None)
@given(lengths=st.lists(st.integers(1, MAX_LENGTH), min_size=1, max_size=6))
def test_export_matches_torch_for_any_lengths(exported: tuple[TinyBert, Path], lengths: list[int]) -> None:
    model, path = exported
    ids, _ = _batch(len(lengths), len(lengths), MAX_LENGTH)
    lens = np.asarray(lengths, dtype=np.int32)
    ids[np.arange(MAX_LENGTH)[None, :] >= lens[:, None]] = 0
    assert check_text_parity(model, path, ids, lens) <= 1e-5


def test_padding_does_not_change_a_texts_logits(exported: tuple[TinyBert, Path]) -> None:
    # a text alone and the same text in a batch padded to a longer one: same logits
    _, path = exported
    session = onnx_session(path)
    ids, lengths = _batch(1, 4, 20)
    together = text_onnx_logits(session, ids, lengths, batch_size=4)
    alone = np.concatenate([text_onnx_logits(session, ids[i : i + 1], lengths[i : i + 1]) for i in range(4)])
    assert max_abs_diff(together, alone) <= 1e-5


def test_export_has_named_dynamic_batch_and_sequence(exported: tuple[TinyBert, Path]) -> None:
    import onnx

    _, path = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["logits"]
    for tensor in graph.input:
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
        batch, sequence = tensor.type.tensor_type.shape.dim
        assert batch.dim_param and sequence.dim_param and not batch.dim_value and not sequence.dim_value
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer)


def test_fused_graph_has_fused_nodes_and_parity(exported: tuple[TinyBert, Path], tmp_path: Path) -> None:
    model, path = exported
    dims = bert_dims(model)
    assert dims == (2, 32)
    counts = fuse_transformer(path, tmp_path / "fused.onnx", *dims)
    layers = 2
    assert counts.get("Attention") == layers
    assert counts.get("SkipLayerNormalization", 0) >= layers
    assert counts.get("EmbedLayerNormalization") == 1
    ids, lengths = _batch(7, 9, 25)
    base = text_onnx_logits(onnx_session(path), ids, lengths)
    fused = text_onnx_logits(onnx_session(tmp_path / "fused.onnx"), ids, lengths)
    assert max_abs_diff(base, fused) <= 1e-5


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_int8_is_smaller_and_close(
    exported: tuple[TinyBert, Path], tmp_path: Path, per_channel: bool
) -> None:
    model, path = exported
    fused = tmp_path / "fused.onnx"
    fuse_transformer(path, fused, *bert_dims(model))  # type: ignore[misc]
    out = quantize_dynamic_int8(fused, tmp_path / "int8.onnx", per_channel=per_channel)
    assert out.stat().st_size < path.stat().st_size / 2
    ids, lengths = _batch(11, 40, 30)
    expected = torch_text_logits(model, ids, lengths)
    got = text_onnx_logits(onnx_session(out), ids, lengths)
    # int8 weights and activations: each logit within 10% of the logits' own spread
    spread = float(expected.max() - expected.min())
    assert max_abs_diff(expected, got) <= 0.1 * spread


def test_bundle_carries_tokenizer_and_spec(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = _tokenizer(VOCAB)
    write_text_bundle(tmp_path, tokenizer, ["a", "b", "c"], MAX_LENGTH)
    loaded = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert loaded.encode("w5 w7 nope").ids == tokenizer.encode("w5 w7 nope").ids == [5, 7, 1]
    spec = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert spec["modality"] == "text" and spec["tokenizer"] == "tokenizer.json"
    assert spec["input"] == {
        "names": ["input_ids", "attention_mask"],
        "dtype": "int64",
        "max_length": MAX_LENGTH,
        "pad_id": 0,
    }
    assert spec["classes"] == ["a", "b", "c"] and spec["output"] == "logits"


def test_tokenizer_larger_than_embedding_is_refused() -> None:
    model = TinyBert()
    check_vocab(_tokenizer(VOCAB), model)
    with pytest.raises(
        DataError, match=r"^The tokenizer has 250 tokens but the model's embedding has 100 rows"
    ):
        check_vocab(_tokenizer(250), model)


class _Broken(TinyBert):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(self.embed(input_ids, attention_mask)).abs()


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DcloopError, match="Cannot export the text model to ONNX"):
        export_text_onnx(_Broken(), tmp_path / "model.onnx", MAX_LENGTH)
    assert list(tmp_path.iterdir()) == []
