"""Which model and recipe a data set gets: the text default and each text model's own recipe.

The image recipe's defaults (lr 3e-3, onecycle, EMA, channels-last) would wreck a pretrained
encoder, so a text model brings its own: a recipe field still at its TrainConfig default takes the
model's value; a field the user set keeps theirs. minilm-l6's recipe trains ~3,000 short texts on
two CPU cores in a few minutes (BERT's fine-tuning settings: AdamW, linear decay after a 10% warmup,
lr 5e-5; LoRA takes lr 1e-3, as its paper's GLUE runs).
"""

from __future__ import annotations

from typing import Any

from dcloop.config import TrainConfig
from dcloop.errors import ConfigError

TEXT_DEFAULT_MODEL = "minilm-l6"

_COMMON: dict[str, Any] = {
    "optimizer": "adamw",
    "schedule": "linear",
    "weight_decay": 0.01,
    "ema_decay": 0.0,
    "label_smoothing": 0.0,
    "channels_last": False,
    "monitor": "val_accuracy",
}
TEXT_RECIPES: dict[str, dict[str, Any]] = {
    "minilm-l6": _COMMON | {"epochs": 3, "batch_size": 32, "lr": 5e-5, "warmup_epochs": 0.3},
    "text-tiny": _COMMON | {"epochs": 10, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 0.5},
}
LORA_LR = 1e-3


def resolve_recipe(recipe: TrainConfig, modality: str) -> TrainConfig:
    """``recipe`` for a data set of ``modality``: the text default model when the model was left at
    its default, the model's own recipe for fields left at theirs; a model of the other modality is
    refused."""
    from dcloop.train._models import list_models, model_modality

    default = TrainConfig.model_fields["model"].default
    if modality == "text" and recipe.model == default:
        recipe = recipe.model_copy(update={"model": TEXT_DEFAULT_MODEL})
    takes = model_modality(recipe.model)
    if takes != modality:
        names = ", ".join(list_models(modality))
        raise ConfigError(
            f"`train.model` {recipe.model} takes {takes} but the data set version holds {modality}. "
            f"Choose one of: {names}."
        )
    if modality == "text" and recipe.tta != "none":
        raise ConfigError(
            f"`train.tta` {recipe.tta} averages views of images; {recipe.model} reads text. Set it to none."
        )
    own = dict(TEXT_RECIPES.get(recipe.model, {}))
    if own and recipe.finetune == "lora":
        own["lr"] = LORA_LR
    fields = TrainConfig.model_fields
    update = {k: v for k, v in own.items() if getattr(recipe, k) == fields[k].default}
    return recipe.model_copy(update=update)
