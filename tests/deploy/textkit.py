"""Helpers of the text serving tests: a tiny BERT classifier as a text model folder (model.onnx,
tokenizer.json, model.json) and a word-level tokenizer with a made-up vocabulary."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

TEXT_CLASSES = ["neg", "pos"]
WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "not",
    "very",
    "really",
    "quite",
    "so",
    "this",
    "that",
    "it",
    "is",
    "was",
    "film",
    "movie",
    "plot",
    "story",
    "actor",
    "acting",
    "scene",
    "ending",
    "music",
    "good",
    "great",
    "fine",
    "lovely",
    "superb",
    "brilliant",
    "fun",
    "warm",
    "bad",
    "awful",
    "dull",
    "boring",
    "weak",
    "poor",
    "terrible",
    "slow",
    "messy",
    "cold",
    "cat",
    "dog",
    "bird",
    "tree",
    "river",
    "city",
    "house",
    "road",
    "car",
    "train",
    "book",
    "song",
    "day",
    "night",
    "sun",
    "rain",
    "snow",
    "wind",
    "sea",
    "hill",
    "park",
    "shop",
    "door",
    "window",
    "table",
    "chair",
    "cup",
    "tea",
    "milk",
    "bread",
    "apple",
    "lemon",
    "stone",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
VOCAB = 100
MAX_LENGTH = 16


def tiny_tokenizer():
    """A word-level tokenizer (lower-cased, BERT pre-tokenization, [CLS] ... [SEP]) over ``WORDS``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    assert len(vocab) <= VOCAB
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tokenizer


def tiny_bert(seed: int = 0):
    """BertConfig(vocab 100, hidden 32, 2 layers, 2 heads, intermediate 64) with a linear head on [CLS]."""
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = BertConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=64,
                initializer_range=0.5,  # wide weights: different texts get clearly different logits
            )
            config._attn_implementation = "eager"  # traces into plain ONNX ops
            self.bert = BertModel(config, add_pooling_layer=False)
            self.head = nn.Linear(32, len(TEXT_CLASSES))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(hidden[:, 0])

    torch.manual_seed(seed)
    return Classifier().eval()


def text_model_folder(folder: Path, seed: int = 0, max_length: int = MAX_LENGTH) -> Path:
    """``folder`` with model.onnx (dynamic batch and sequence), tokenizer.json and model.json; returns
    the ONNX path, ready for ``register_model_version``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    model = tiny_bert(seed)
    ids = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 3:] = 0
    path = folder / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    (folder / "tokenizer.json").write_text(tiny_tokenizer().to_str(), encoding="utf-8")
    spec = {
        "modality": "text",
        "classes": TEXT_CLASSES,
        "input": {"names": ["input_ids", "attention_mask"], "dtype": "int64", "max_length": max_length},
        "tokenizer": "tokenizer.json",
    }
    (folder / "model.json").write_text(json.dumps(spec), encoding="utf-8")
    return path


def onnx_logits(onnx_path: Path, texts: list[str], max_length: int = MAX_LENGTH) -> np.ndarray:
    """Logits of ``texts`` from ONNX Runtime called directly, one text at a time (no padding at all)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tokenizer = tiny_tokenizer()
    tokenizer.enable_truncation(max_length)
    rows = []
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        rows.append(session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
    return np.stack(rows)


def sentences(n: int, seed: int = 0, words: tuple[int, int] = (3, 8), unknown: float = 0.0) -> list[str]:
    """``n`` made-up sentences from the vocabulary; ``unknown`` is the share of words outside it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picked = []
        for _ in range(int(rng.integers(words[0], words[1] + 1))):
            if rng.random() < unknown:
                picked.append("zq" + "".join(rng.choice(list("xyzkvw"), 4)))
            else:
                picked.append(str(rng.choice(WORDS)))
        out.append(" ".join(picked))
    return out
