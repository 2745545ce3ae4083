"""Latency of one inference forward, and the name of the device it ran on."""

from __future__ import annotations

import platform
import statistics
import time

import torch
from torch import nn


def measure_latency(model: nn.Module, batch: torch.Tensor, repeats: int = 10) -> float:
    """Median seconds of one inference forward on ``batch`` (CUDA work waited for)."""
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(3):  # warm-up: kernels chosen, caches filled
                model(batch)
            times = []
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                model(batch)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` for reports (GPU model, or CPU arch and threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
