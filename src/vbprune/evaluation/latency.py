"""Latency of one inference forward (:func:`measure_latency`), of several models in turns
(:func:`measure_latencies`), and the name of the device they ran on."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

# measured in turns, on the batch and device the reports name (re-exported: the commands'
# and vbprune 0.5's paths)
from ..architectures.timing import device_name, measure_latencies, timing_batch

__all__ = ["device_name", "measure_latencies", "measure_latency", "timing_batch"]


def measure_latency(
    model: nn.Module, batch: torch.Tensor, repeats: int = 10, max_seconds: float | None = None
) -> float:
    """Median seconds of one inference forward on ``batch`` (CUDA work waited for), over
    ``repeats`` forwards, or fewer once ``max_seconds`` have passed (at least one)."""
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            began = time.perf_counter()
            for _ in range(3):  # warm-up: kernels chosen, caches filled
                model(batch)
                if max_seconds is not None and time.perf_counter() - began > max_seconds / 2:
                    break  # a slow model: keep half the budget for the timed runs
            times: list[float] = []
            began = time.perf_counter()
            for _ in range(max(1, repeats)):
                sync()
                start = time.perf_counter()
                model(batch)
                sync()
                times.append(time.perf_counter() - start)
                if max_seconds is not None and time.perf_counter() - began > max_seconds / 2:
                    break
    finally:
        model.train(was_training)
    return statistics.median(times)
