"""Top-1 accuracy over a (sharded) loader, counted exactly once per sample."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .models import logits_of

if TYPE_CHECKING:
    from accelerate import Accelerator


def top1_accuracy(
    model: nn.Module, batches: Iterable[dict[str, Any]], accelerator: Accelerator | None = None
) -> tuple[float, int]:
    """Fraction of correct top-1 predictions and the number of samples, over all processes.

    Each process must read its own shard (no padding): correct/total counts are summed.
    """
    param = next(model.parameters())
    device = accelerator.device if accelerator is not None else param.device
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = torch.zeros((), dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                images = batch["pixel_values"].to(device, param.dtype)
                labels = batch["labels"].to(device)
                predictions = logits_of(model(images)).argmax(-1)
                correct += (predictions == labels).sum()
                total += labels.numel()
    finally:
        model.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:
        correct, total = accelerator.reduce(torch.stack([correct, total]), reduction="sum")
    if int(total) == 0:
        raise ValueError("no evaluation sample")
    return int(correct) / int(total), int(total)
