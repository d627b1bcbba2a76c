"""Transformer shapes: parameter counts, FLOPs per token and presets of published models.

Parameters count the weight matrices and embeddings; biases and norms (well under 0.1% of a large
model) are left out. FLOPs per token follow the PaLM appendix B convention (Chowdhery et al. 2022):
training costs 6N + 12·L·s·d per token, where the second term is the attention score and value
matmuls that the 6N rule misses. For a mixture-of-experts model N is the parameters active per
token (``active_params``); memory still holds all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dcloop.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class ModelShape:
    """A transformer. ``params`` alone is enough for FLOPs; the shape adds attention and activations.

    ``active_params`` is what a mixture-of-experts model computes with per token (None: all of them).
    """

    name: str
    params: float
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    vocab: int | None = None
    seq_len: int | None = None
    ffn: int | None = None
    gated_mlp: bool = False
    tied_embeddings: bool = True
    active_params: float | None = None

    @property
    def compute_params(self) -> float:
        """Parameters each token is computed with: the active ones of a mixture of experts, else all."""
        return self.params if self.active_params is None else self.active_params

    @property
    def has_shape(self) -> bool:
        return None not in (self.layers, self.hidden, self.heads, self.seq_len)

    @property
    def head_dim(self) -> int:
        assert self.hidden is not None and self.heads is not None
        return self.hidden // self.heads

    @property
    def kv_ratio(self) -> float:
        """Key/value heads over query heads: 1 for multi-head, below 1 for grouped-query attention."""
        assert self.heads is not None
        return (self.kv_heads or self.heads) / self.heads


def transformer(
    name: str,
    layers: int,
    hidden: int,
    heads: int,
    seq_len: int,
    vocab: int = 0,
    kv_heads: int | None = None,
    ffn: int | None = None,
    gated_mlp: bool = False,
    tied_embeddings: bool = True,
    params: float | None = None,
) -> ModelShape:
    """A shape with its parameter count computed (unless ``params`` is given)."""
    for field_name, value in (("layers", layers), ("hidden", hidden), ("heads", heads), ("seq_len", seq_len)):
        if value <= 0:
            raise ConfigError(f"`{field_name}` must be a positive integer. Got {value}.")
    if hidden % heads:
        raise ConfigError(f"`hidden` ({hidden}) must be divisible by `heads` ({heads}).")
    kv = heads if kv_heads is None else kv_heads
    if kv <= 0 or heads % kv:
        raise ConfigError(f"`kv_heads` must divide `heads` ({heads}). Got {kv}.")
    if vocab < 0:
        raise ConfigError(f"`vocab` must be zero or positive. Got {vocab}.")
    width = ffn or 4 * hidden
    if width <= 0:
        raise ConfigError(f"`ffn` must be a positive integer. Got {ffn}.")
    attention = 2 * hidden * hidden + 2 * hidden * kv * (hidden // heads)
    mlp = (3 if gated_mlp else 2) * hidden * width
    embeddings = vocab * hidden * (1 if tied_embeddings else 2)
    counted = layers * (attention + mlp) + embeddings
    return ModelShape(
        name=name,
        params=float(params if params is not None else counted),
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv,
        vocab=vocab,
        seq_len=seq_len,
        ffn=width,
        gated_mlp=gated_mlp,
        tied_embeddings=tied_embeddings,
    )


def params_only(params: float, name: str = "custom") -> ModelShape:
    """A model known only by its parameter count (no attention term, no activation estimate)."""
    if not params > 0:
        raise ConfigError(f"`params` must be positive. Got {params:g}.")
    return ModelShape(name=name, params=float(params))


def train_flops_per_token(model: ModelShape) -> float:
    """Model FLOPs per training token: 6N plus 12·L·s·d for attention (PaLM appendix B)."""
    return 6 * model.compute_params + attention_flops_per_token(model, forward_and_backward=True)


def attention_flops_per_token(model: ModelShape, forward_and_backward: bool) -> float:
    """QK^T and AV matmuls per token: 4·L·s·d forward, three times that with the backward pass."""
    if not model.has_shape:
        return 0.0
    assert model.layers is not None and model.seq_len is not None and model.hidden is not None
    forward = 4.0 * model.layers * model.seq_len * model.hidden
    return 3 * forward if forward_and_backward else forward


PRESETS: dict[str, ModelShape] = {
    shape.name: shape
    for shape in (
        # Brown et al. 2020, Table 2.1 (n_layers, d_model, n_heads, n_ctx); vocabulary of GPT-2's BPE.
        transformer("gpt3-175b", 96, 12288, 96, 2048, vocab=50257),
        # Devlin et al. 2019, Section 3 (L, H, A); WordPiece vocabulary of 30,522; 512 positions.
        transformer("bert-base", 12, 768, 12, 512, vocab=30522),
        transformer("bert-large", 24, 1024, 16, 512, vocab=30522),
        # Touvron et al. 2023a (LLaMA), Table 2 and the released params.json (ffn 22016).
        transformer("llama-65b", 80, 8192, 64, 2048, 32000, ffn=22016, gated_mlp=True, tied_embeddings=False),
        # Touvron et al. 2023b (Llama 2), Table 1 and released config.json files.
        transformer("llama2-7b", 32, 4096, 32, 4096, 32000, ffn=11008, gated_mlp=True, tied_embeddings=False),
        transformer(
            "llama2-13b", 40, 5120, 40, 4096, 32000, ffn=13824, gated_mlp=True, tied_embeddings=False
        ),
        transformer("llama2-70b", 80, 8192, 64, 4096, 32000, 8, 28672, gated_mlp=True, tied_embeddings=False),
        # Llama 3 Herd of Models (Dubey et al. 2024), Table 3; pre-training sequence length 8,192.
        transformer("llama3-8b", 32, 4096, 32, 8192, 128256, 8, 14336, gated_mlp=True, tied_embeddings=False),
        transformer(
            "llama3-70b", 80, 8192, 64, 8192, 128256, 8, 28672, gated_mlp=True, tied_embeddings=False
        ),
        transformer(
            "llama3.1-405b", 126, 16384, 128, 8192, 128256, 8, 53248, gated_mlp=True, tied_embeddings=False
        ),
        # BigScience 2022 (BLOOM), Table 3: 70 layers, 14,336 hidden, 112 heads, 250,680 vocabulary.
        transformer("bloom-176b", 70, 14336, 112, 2048, vocab=250680),
    )
}


def get_preset(name: str, seq_len: int | None = None) -> ModelShape:
    """A preset by name, optionally with another sequence length."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise unknown_name("model preset", name, PRESETS)
    shape = PRESETS[key]
    if seq_len is not None:
        if seq_len <= 0:
            raise ConfigError(f"`seq_len` must be a positive integer. Got {seq_len}.")
        shape = replace(shape, seq_len=seq_len)
    return shape


def flop_convention(model: ModelShape, recompute: str) -> str:
    """The FLOP counts a plan of ``model`` uses, in words (model FLOPs; hardware FLOPs add recomputation)."""
    n = "6·N_active" if model.active_params is not None else "6·N"
    if not model.has_shape:
        model_rule = f"{n} per token (no shape given, so no attention term)"
    else:
        model_rule = f"{n} + 12·L·s·d per token (PaLM appendix B)"
    extra = {
        "full": "a second forward pass (2·N + 4·L·s·d)"
        if model.has_shape
        else "a second forward pass (2·N: 8·N)",
        "selective": "the attention scores again (4·L·s·d)" if model.has_shape else "nothing without a shape",
        "none": "nothing",
    }[recompute]
    return f"model FLOPs {model_rule}; hardware FLOPs add, for recompute {recompute}, {extra}"
