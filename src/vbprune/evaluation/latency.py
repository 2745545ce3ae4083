"""Latency of one inference forward, and the name of the device it ran on."""

from __future__ import annotations

import platform
import statistics
import time

import torch
from torch import nn


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


def timing_batch(model: nn.Module, batch_size: int) -> torch.Tensor:
    """Zeros of ``batch_size`` images at ``model``'s own input size, on its device and in
    its dtype: what latency is measured on (values do not change the time)."""
    from ..architectures.interface import input_size

    param = next(model.parameters())
    return torch.zeros((batch_size, *input_size(model)), device=param.device, dtype=param.dtype)


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` for reports (GPU model, or CPU arch and threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def measure_latencies(
    models: dict[str, nn.Module],
    batch: torch.Tensor,
    repeats: int = 10,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Median seconds of one inference forward of each model on ``batch``, measured in
    turns (each round times every model once, the order rotating), so that drift on a
    shared machine hits them alike: what a speedup between them should be read from.
    Stops after ``repeats`` rounds, or earlier once ``max_seconds`` have passed (at
    least one round)."""
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    modes = {name: model.training for name, model in models.items()}
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        with torch.inference_mode():
            for model in models.values():
                model.eval()
                for _ in range(2):  # warm-up: kernels chosen, caches filled
                    model(batch)
            began = time.perf_counter()
            for round_index in range(max(1, repeats)):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    sync()
                    start = time.perf_counter()
                    models[name](batch)
                    sync()
                    times[name].append(time.perf_counter() - start)
                if max_seconds is not None and time.perf_counter() - began > max_seconds:
                    break
    finally:
        for name, model in models.items():
            model.train(modes[name])
    return {name: statistics.median(values) for name, values in times.items()}
