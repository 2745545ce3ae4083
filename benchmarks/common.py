"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch

import vbprune


def describe(device: torch.device, dtype: str) -> str:
    """One line naming the machine the numbers come from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"device: {device} ({name}), {dtype}, torch {torch.__version__}"


def synthetic_stats(model: torch.nn.Module, seed: int = 0) -> vbprune.ActivationStats:
    """Random statistics for every MLP of ``model``.

    They fix which neurons go, not how long selection, surgery or the pruned shapes take.
    The variances are i.i.d., so the global ranking prunes every MLP by about the ratio.
    """
    g = torch.Generator().manual_seed(seed)
    return vbprune.ActivationStats(
        {
            site.name: vbprune.NeuronStats(
                10_000,
                torch.randn(site.hidden_size, generator=g, dtype=torch.float64),
                torch.rand(site.hidden_size, generator=g, dtype=torch.float64),
            )
            for site in vbprune.find_mlp_sites(model)
        }
    )


def interleaved_times(
    runs: dict[str, Callable[[], object]], repeats: int, cuda: bool = False, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds of every call of every run, taking turns, so drift hits all of them alike."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for run in runs.values():
        for _ in range(warmup):  # kernels chosen, caches and allocator warm
            run()
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[label].append(time.perf_counter() - start)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios: robust to a slow round that hit both alike."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))
