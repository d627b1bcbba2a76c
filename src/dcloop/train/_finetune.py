"""Fine-tuning a pretrained text encoder: freezing it for the first epochs, gradient checkpointing,
LoRA adapters (peft) and what a run reports about it (trainable parameters, FLOPs per token).

LoRA (Hu et al. 2021) adds a trainable low-rank update B·A beside each frozen linear weight of the
encoder; the head stays fully trainable. After training the update is merged into the weights, so
the exported and served model is a plain encoder of the same shape and speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dcloop.errors import ConfigError

# every linear layer of a BERT block: attention q/k/v and output, the MLP's two projections
LORA_TARGETS = ["query", "key", "value", "dense"]
ADAPTER = "adapter.safetensors"


def encoder_freezer(model: nn.Module) -> Callable[[bool], None]:
    """A switch that freezes (True) or releases (False) the encoder's trainable parameters, leaving
    the head training; parameters frozen before (LoRA's base weights) stay frozen."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ConfigError(
            "`train.freeze_epochs` needs a model with a pretrained encoder (minilm-l6, text-tiny); "
            f"{type(model).__name__} has none. Set it to 0."
        )
    trainable = [p for p in encoder.parameters() if p.requires_grad]

    def freeze(frozen: bool) -> None:
        for param in trainable:
            param.requires_grad_(not frozen)

    return freeze


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Recompute each encoder layer's activations in the backward pass: less memory, ~30% more compute."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "gradient_checkpointing_enable"):
        raise ConfigError("`train.grad_checkpointing` applies to text models (minilm-l6, text-tiny) only.")
    # non-reentrant: works when the encoder's inputs need no grad (frozen embeddings, LoRA)
    encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def apply_lora(model: nn.Module, r: int, alpha: int, dropout: float) -> None:
    """Freeze the encoder and give each of its linear layers a rank-``r`` adapter (in place)."""
    from peft import LoraConfig, get_peft_model

    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ConfigError("`train.finetune` lora applies to text models (minilm-l6, text-tiny) only.")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none")
    with warnings.catch_warnings():
        # peft asks the encoder with a name transformers deprecates (is_gradient_checkpointing)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        model.encoder = get_peft_model(encoder, config)


def is_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the encoder's weights and drop them; the model is then a plain one."""
    if is_lora(model):
        encoder: Any = model.encoder
        model.encoder = encoder.merge_and_unload()
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters and the head alone: what LoRA trained (the base encoder is the pretrained one)."""
    return {
        name: tensor
        for name, tensor in model.state_dict().items()
        if "lora_" in name or name.startswith("head.")
    }


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """All parameters, the trainable ones, and the matmul ones (all but embedding tables)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    params = list(model.parameters())
    return {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "matmul_params": sum(p.numel() for p in params if id(p) not in embeddings),
    }


def train_flops_per_token(counts: dict[str, int], lora: bool) -> float:
    """Model FLOPs per trained token: 6N for full training (2N forward, 4N backward: gradients of the
    activations and of the weights; Kaplan et al. 2020), N = non-embedding parameters. With LoRA the
    frozen weights get no weight gradient: 4N + 6·(trainable parameters)."""
    n = counts["matmul_params"]
    return float(4 * n + 6 * counts["trainable_params"]) if lora else float(6 * n)
