"""Evaluate classifiers over sharded loaders: every sample counted exactly once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..architectures.interface import logits_of
from ..core.errors import DatasetError
from .metrics import TopKAccuracy

if TYPE_CHECKING:
    from accelerate import Accelerator


def evaluate_model(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    accelerator: Accelerator | None = None,
    topk: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Top-k accuracies and mean cross-entropy of ``model`` over all processes' shards.

    Each process must read its own shard (no padding); ranked predictions are gathered
    from every process and scored with :class:`vbprune.evaluation.metrics.TopKAccuracy`.

    Returns:
        ``{"top1_accuracy": ..., "top5_accuracy": ..., "loss": ..., "samples": N}``
        (top-k for k above the number of classes is left out).
    """
    from tqdm.auto import tqdm

    param = next(model.parameters())
    device = accelerator.device if accelerator is not None else param.device
    show = accelerator is None or accelerator.is_main_process
    try:
        total = len(batches)  # type: ignore[arg-type]
    except TypeError:  # a stream: no total
        total = None
    # a bar on a terminal of the main process only (disable=None: off when not a TTY)
    batches = tqdm(batches, total=total, desc="evaluating", disable=not show or None)
    ranked: list[list[int]] = []
    references: list[int] = []
    loss_sum = 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                images = batch["pixel_values"].to(device, param.dtype)
                labels = batch["labels"].to(device)
                logits = logits_of(model(images)).float()
                loss_sum += float(
                    torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
                )
                k = min(max(topk), logits.shape[-1])
                ranked += logits.topk(k, dim=-1).indices.tolist()
                references += labels.tolist()
    finally:
        model.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        # lists of different lengths per process: gathered as objects, nothing padded
        parts = gather_object([(ranked, references, loss_sum)])
        ranked = [p for part in parts for p in part[0]]
        references = [r for part in parts for r in part[1]]
        loss_sum = sum(part[2] for part in parts)
    if not references:
        raise DatasetError("no evaluation sample")
    result: dict[str, float] = {"samples": len(references), "loss": loss_sum / len(references)}
    for k in topk:
        if ranked and len(ranked[0]) >= k:
            result |= TopKAccuracy(k=k).compute(predictions=ranked, references=references)
    return result


def top1_accuracy(
    model: nn.Module, batches: Iterable[dict[str, Any]], accelerator: Accelerator | None = None
) -> tuple[float, int]:
    """Top-1 accuracy and the number of samples, over all processes."""
    result = evaluate_model(model, batches, accelerator, topk=(1,))
    return result["top1_accuracy"], int(result["samples"])
