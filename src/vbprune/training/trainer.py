"""Recover accuracy after pruning: knowledge distillation from the unpruned model.

``DistillationTrainer`` is a transformers ``Trainer`` whose loss mixes cross-entropy on
the labels with the KL divergence to a frozen teacher
(:func:`vbprune.training.losses.distillation_loss`).
The paper's recipe is the default: AdamW, lr 1.5e-5, cosine schedule, weight decay 0.01,
batch size 32, 10 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.trainer_utils import EvalPrediction

from ..architectures import model_backend
from ..architectures.interface import logits_of, num_classes
from ..core.errors import ConfigError
from .losses import distillation_loss

IGNORED = -100  # the label of a skipped image's slot (as cross-entropy's ignore_index)


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the distillation weights and the paper's defaults."""

    alpha: float = field(
        default=0.5, metadata={"help": "weight of the distillation term, in [0, 1]"}
    )
    temperature: float = field(default=2.0, metadata={"help": "softening temperature T > 0"})
    learning_rate: float = field(default=1.5e-5, metadata={"help": "AdamW learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "batch per device"})
    num_train_epochs: float = field(default=10.0, metadata={"help": "training epochs"})
    # Image datasets transformed on the fly keep raw columns; timm models take no labels.
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep raw columns"})
    label_names: list[str] | None = field(
        default_factory=lambda: ["labels"], metadata={"help": "label column(s)"}
    )
    # pinned memory only helps a device that copies from it; on a CPU torch warns of it
    dataloader_pin_memory: bool = field(
        default_factory=lambda: torch.accelerator.is_available(),
        metadata={"help": "pin loader memory (default: when a GPU or other accelerator is there)"},
    )

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        super().__post_init__()


class TimmClassifier(nn.Module):
    """A timm model seen as a transformers classifier: ``forward(pixel_values)`` returns an
    ``ImageClassifierOutput`` (a raw tensor would make ``Trainer`` drop samples)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, labels=None, **kwargs) -> ImageClassifierOutput:
        return ImageClassifierOutput(logits=self.model(pixel_values))


def as_trainable(model: nn.Module) -> nn.Module:
    """Wrap a timm model in :class:`TimmClassifier`; transformers models stay as they are."""
    return TimmClassifier(model) if model_backend(model) == "timm" else model


class DistillationTrainer(Trainer):
    """A ``Trainer`` that distils ``teacher_model`` into the (pruned) model it trains.

    The teacher is placed and autocast by accelerate, frozen, kept in eval mode, run under
    ``no_grad`` and never saved with the student. timm students and teachers are wrapped
    for the Trainer (:func:`as_trainable`).

    Example:
        >>> trainer = DistillationTrainer(model=pruned, teacher_model=original,
        ...     args=DistillationTrainingArguments("out", alpha=0.5, temperature=2.0),
        ...     train_dataset=train, eval_dataset=val, data_collator=collate)
        >>> trainer.train()
    """

    # compute_loss returns a per-batch mean: training_step divides by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args, teacher_model: nn.Module, **kwargs):
        if "model" in kwargs:
            kwargs["model"] = as_trainable(kwargs["model"])
        super().__init__(*args, **kwargs)
        teacher = as_trainable(teacher_model)
        student_labels, teacher_labels = num_classes(self.model), num_classes(teacher)
        if None not in (student_labels, teacher_labels) and student_labels != teacher_labels:
            raise ConfigError(
                f"teacher has {teacher_labels} classes, the student {student_labels}: they "
                "must share one label space"
            )
        teacher.requires_grad_(False)
        self.teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True).eval()
        self.skipped_images: set[str] = set()  # named by the collator (skip_bad_images)

    def _load_best_model(self) -> None:
        # The Trainer's own loader reads the file's tensor names into the model with
        # strict=False: transformers 5 saves many models under other names, so most
        # tensors silently stayed at the last epoch. Load every one, or fail.
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:  # sharded: the Trainer's way
            return super()._load_best_model()
        self._load_weights(self.state.best_model_checkpoint)
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if (
            (model is not None and model is not self.model)
            or self.is_fsdp_enabled
            or (self.is_deepspeed_enabled)
        ):  # sharded or another module: the Trainer's own way
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._load_weights(resume_from_checkpoint)
        return None

    def _load_weights(self, checkpoint: str) -> None:
        """Every weight of ``checkpoint`` into the model, by the model's own names."""
        from pathlib import Path

        from ..io.weights import checkpoint_state_dict

        state = checkpoint_state_dict(Path(checkpoint), self.model)
        self.model.load_state_dict(state, strict=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Distillation loss of a batch (``num_items_in_batch`` unused: a batch mean)."""
        self.skipped_images.update(inputs.pop("skipped", []))
        pixel_values, labels = inputs["pixel_values"], inputs.get("labels")
        outputs = model(pixel_values=pixel_values)
        logits = logits_of(outputs)
        with torch.no_grad():
            self.teacher.eval()  # Trainer.train() flips modules to train mode
            teacher_logits = logits_of(self.teacher(pixel_values=pixel_values))
        if labels is not None and bool((labels == IGNORED).any()):
            # unreadable images kept their slots (ImageCollator(keep_slots=True)), so that
            # every process's batch has the same size: left out of the loss
            real = labels != IGNORED
            logits, teacher_logits, labels = logits[real], teacher_logits[real], labels[real]
        if len(logits) == 0:  # nothing to learn from: a zero loss, zero gradients
            loss = logits_of(outputs).sum() * 0.0
            return (loss, outputs) if return_outputs else loss
        args = self.args
        alpha = getattr(args, "alpha", 0.5)
        temperature = getattr(args, "temperature", 2.0)
        loss = distillation_loss(logits, teacher_logits, labels, alpha, temperature)
        return (loss, outputs) if return_outputs else loss


def top1_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: top-1 accuracy and the number of samples scored
    (after accelerate dropped the padding of uneven shards)."""
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    predictions = torch.as_tensor(logits).argmax(-1)
    labels = torch.as_tensor(eval_prediction.label_ids)
    real = labels != IGNORED  # the slots of skipped unreadable images are not scored
    predictions, labels = predictions[real], labels[real]
    return {"top1": float((predictions == labels).float().mean()), "samples": len(labels)}
