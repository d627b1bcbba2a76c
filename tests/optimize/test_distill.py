"""The distillation loss: soft targets from the teacher, teacher frozen."""

from __future__ import annotations

import torch

from dcloop.train._models import create_model


def test_distillation_loss_is_zero_gradient_at_teacher_when_alpha_is_one() -> None:
    from dcloop.optimize._distill import distillation_loss

    torch.manual_seed(0)
    teacher = create_model("tiny-cnn", 1, 2, 28).eval()
    images = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        logits = teacher(images)
    loss_fn = distillation_loss(teacher, temperature=4.0, alpha=1.0)
    student_logits = logits.clone().requires_grad_(True)
    loss = loss_fn(student_logits, torch.zeros(8, dtype=torch.long), images)
    loss.backward()
    assert abs(float(loss.detach())) < 1e-6 and float(student_logits.grad.abs().max()) < 1e-6
    assert not any(p.requires_grad for p in teacher.parameters())
