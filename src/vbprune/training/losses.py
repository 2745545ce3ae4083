"""The knowledge-distillation loss used to recover a pruned model (torch only)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..core.errors import ConfigError


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> Tensor:
    """``(1 - alpha) * CE(student, labels) + alpha * T^2 * KL(teacher_T || student_T)``.

    ``KL(teacher || student)`` at temperature T compares ``softmax(teacher / T)`` with
    ``softmax(student / T)``, averaged over the batch; the ``T^2`` keeps its gradient on
    the scale of the cross-entropy's (Hinton et al., 2015).

    Args:
        student_logits: ``(B, C)`` logits of the model being trained.
        teacher_logits: ``(B, C)`` logits of the frozen original model.
        labels: ``(B,)`` class indices; may be ``None`` only when ``alpha == 1``.
        alpha: Weight of the distillation term, in [0, 1] (0: plain cross-entropy).
        temperature: Softening temperature T > 0.

    Returns:
        The scalar loss, a mean over the batch.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ: do the models share a label space?"
        )
    student_logits = student_logits.float()  # softmax of bf16 logits loses too much
    loss = student_logits.new_zeros(())
    if alpha < 1.0:
        if labels is None:
            raise ConfigError("labels are needed unless alpha == 1")
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, labels)
    if alpha > 0.0:
        log_student = F.log_softmax(student_logits / temperature, dim=-1)
        log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
        kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
        loss = loss + alpha * temperature**2 * kl
    return loss


__all__ = ["distillation_loss"]
