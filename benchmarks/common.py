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


def synthetic_stats(
    model: torch.nn.Module, seed: int = 0, spread: float = 0.0, heads: bool = False
) -> vbprune.ActivationStats:
    """Random statistics for every MLP of ``model`` (and with ``heads`` for every
    attention's output-projection input).

    They fix which neurons go, not how long selection or surgery take. With ``spread``
    0 the variances are i.i.d., so the global ranking prunes every MLP by about the
    ratio. A trained model's MLPs differ: ``spread`` s scales each MLP's variances by
    ``exp(s * N(0, 1))``, which makes the global ranking prune them unevenly.
    """
    g = torch.Generator().manual_seed(seed)
    sites = {}
    sites_found = list(vbprune.find_mlp_sites(model))
    if heads:
        sites_found += vbprune.find_attention_sites(model)
    for site in sites_found:
        scale = float(torch.exp(spread * torch.randn(1, generator=g, dtype=torch.float64)))
        sites[site.name] = vbprune.NeuronStats(
            10_000,
            torch.randn(site.width, generator=g, dtype=torch.float64),
            scale * torch.rand(site.width, generator=g, dtype=torch.float64),
        )
    return vbprune.ActivationStats(sites)


def interleaved_times(
    runs: dict[str, Callable[[], object]], repeats: int, cuda: bool = False, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds of every call of every run, taking turns, so drift hits all of them alike.

    The order rotates from round to round, so no run always goes first.
    """
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for run in runs.values():
        for _ in range(warmup):  # kernels chosen, caches and allocator warm
            run()
    times: dict[str, list[float]] = {label: [] for label in runs}
    labels = list(runs)
    for round_index in range(repeats):
        shift = round_index % len(labels)
        for label in labels[shift:] + labels[:shift]:
            run = runs[label]
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[label].append(time.perf_counter() - start)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios: robust to a slow round that hit both alike."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))
