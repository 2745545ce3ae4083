"""Timing forwards on a device: models (or single modules on captured inputs) measured in
turns, the batch latency is measured on, and the device's readable name.

Below :mod:`vbprune.planning` (latency budgets time the sites) and
:mod:`vbprune.evaluation` (``evaluate --baseline``, ``prune --measure-speedup``).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .interface import input_size


def timing_batch(model: nn.Module, batch_size: int) -> torch.Tensor:
    """Zeros of ``batch_size`` images at ``model``'s own input size, on its device and in
    its dtype: what latency is measured on (values do not change the time)."""
    param = next(model.parameters())
    return torch.zeros((batch_size, *input_size(model)), device=param.device, dtype=param.dtype)


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` for reports (GPU model, or CPU arch and threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def time_in_turns(
    calls: Mapping[str, Callable[[], object]],
    device: torch.device,
    repeats: int = 10,
    max_seconds: float | None = None,
    warmup: int = 2,
) -> dict[str, float]:
    """Median seconds of each call, measured in turns: each round times every call once,
    the order rotating, so that drift on a shared machine hits them alike (what a ratio
    between them should be read from). Stops after ``repeats`` rounds, or earlier once
    ``max_seconds`` have passed (at least one round). On a GPU ``device`` its work is
    waited for around each call."""
    if device.type == "cuda":

        def sync() -> None:
            torch.cuda.synchronize(device)
    else:

        def sync() -> None:
            pass

    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(warmup):  # kernels chosen, caches filled
                call()
        began = time.perf_counter()
        for round_index in range(max(1, repeats)):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                sync()
                start = time.perf_counter()
                calls[name]()
                sync()
                times[name].append(time.perf_counter() - start)
            if max_seconds is not None and time.perf_counter() - began > max_seconds:
                break
    return {name: statistics.median(values) for name, values in times.items()}


def measure_latencies(
    models: dict[str, nn.Module],
    batch: torch.Tensor,
    repeats: int = 10,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Median seconds of one inference forward of each model on ``batch``, measured in
    turns (:func:`time_in_turns`): what a speedup between them should be read from.
    Stops after ``repeats`` rounds, or earlier once ``max_seconds`` have passed (at
    least one round)."""
    modes = {name: model.training for name, model in models.items()}
    try:
        for model in models.values():
            model.eval()
        calls = {name: (lambda m=model: m(batch)) for name, model in models.items()}
        return time_in_turns(calls, batch.device, repeats, max_seconds)
    finally:
        for name, model in models.items():
            model.train(modes[name])
