"""Knowledge distillation: a smaller zoo model learns from a trained teacher's softened outputs.

Loss (Hinton et al., 2015): alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T))
+ (1 - alpha) * cross-entropy with the true labels. The T^2 factor keeps the soft-target gradient
on the same scale as the hard one whatever the temperature. The teacher sees the same (augmented)
images, or the same padded token ids, as the student, in eval mode, without gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

    from dcloop.config import TrainConfig
    from dcloop.data import PreparedDataset
    from dcloop.train import FitResult
    from dcloop.train._recipe import LossFn


def distillation_loss(teacher: nn.Module, temperature: float, alpha: float, pad_id: int = 0) -> LossFn:
    """A ``loss_fn(logits, targets, inputs)`` for fit_model that distils ``teacher`` into the student.

    ``inputs`` is the batch's images, its model inputs as a tuple, or its padded token ids alone (the
    teacher's attention mask is then every id but ``pad_id``, the id the batch was padded with)."""
    import torch
    from torch.nn import functional as F

    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)

    def teacher_inputs(inputs: Any) -> tuple[Tensor, ...]:
        if isinstance(inputs, tuple | list):
            return tuple(inputs)
        if inputs.is_floating_point():
            return (inputs,)
        return inputs, (inputs != pad_id).long()

    def loss_fn(logits: Tensor, targets: Tensor, inputs: Any) -> Tensor:
        with torch.no_grad():
            taught = teacher(*teacher_inputs(inputs)).float()
            if taught.shape[1] == 1:  # a single-logit (BCE) teacher: P(class 1) = sigmoid = softmax([0, z])
                taught = torch.cat([torch.zeros_like(taught), taught], dim=1)
            soft_targets = F.log_softmax(taught / temperature, dim=1)
        soft = F.kl_div(
            F.log_softmax(logits.float() / temperature, dim=1),
            soft_targets,
            reduction="batchmean",
            log_target=True,
        )
        hard = F.cross_entropy(logits.float(), targets)
        return alpha * temperature**2 * soft + (1.0 - alpha) * hard

    return loss_fn


def fit_student(
    student: nn.Module,
    teacher: nn.Module,
    data: PreparedDataset,
    recipe: TrainConfig,
    temperature: float,
    alpha: float,
    tokenizer: Any = None,
) -> FitResult:
    """Train ``student`` on ``data`` with ``recipe`` against ``teacher``'s softened outputs (a text
    data set: both take the ``tokenizer``'s ids, padded with its pad id)."""
    from dcloop.train._loop import fit_model, resolve_device

    # fit_model moves only the student; the teacher must sit on the same device to see its batches
    teacher.to(resolve_device(recipe.device))
    pad = int(tokenizer.padding["pad_id"]) if tokenizer is not None and tokenizer.padding else 0
    loss_fn = distillation_loss(teacher, temperature, alpha, pad)
    extra = {} if tokenizer is None else {"tokenizer": tokenizer}
    try:
        return fit_model(student, data, recipe, loss_fn=loss_fn, progress_label="distill", **extra)
    finally:
        teacher.cpu()
