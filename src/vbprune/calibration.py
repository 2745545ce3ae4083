"""VarianceCalibrator: run calibration batches through a model and record MLP statistics.

Hooks sit on each MLP's ``fc2`` input, which is the post-activation value (after GRN for
ConvNeXt v2; dropout is off in eval mode). Each process accumulates its own shard; after
the loop the per-site (count, mean, M2) are gathered and merged exactly with Chan's
formula, so the result does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .architectures import AttentionSite, MLPSite, find_attention_sites, find_mlp_sites
from .core.errors import (
    ConfigError,
    NonFiniteActivationError,
    OptionTypeError,
    ProcessCountError,
    StatisticsError,
)
from .core.statistics import ActivationStats, NeuronStats

if TYPE_CHECKING:
    from accelerate import Accelerator


class VarianceCalibrator:
    """Collect per-neuron post-activation mean and variance of every MLP of a model (and,
    with ``heads=True``, per channel of every attention's output-projection input).

    Args:
        model: A supported timm or transformers model (optionally prepared by accelerate).
        accelerator: When given, inputs go to ``accelerator.device``, its autocast is used,
            only the main process shows progress, and statistics of all processes are
            merged at the end of :meth:`run`. Each process must be fed its own shard.
        covariance: Also collect the covariance of every MLP's hidden neurons (what
            ``compensate="ls"`` needs): H^2 float64 per MLP (DeiT-B: 906 MB), and about
            a float32 Gram matrix of the hidden activations per MLP and batch (half of it
            computed, then mirrored).
        covariance_fraction: Estimate the covariance from this fraction of each image's
            tokens (or positions), drawn at random per image and batch; 1.0 uses all of
            them. Means and variances, and so the ranking, always use every token; the
            covariance's diagonal stays exact. 0.25 brings DeiT-S calibration from 2.1x to
            1.5x a plain forward on a 2-core CPU (docs/benchmarks.md).
        seed: Seed of the token draws (``covariance_fraction < 1``), per process.
        heads: Also record every prunable attention module's output-projection input
            (``num_heads * head_dim`` channels, the heads' concatenated outputs) as
            ``stats[attention_site.name]``, for ``PruningConfig(heads=True)``.

    Example:
        >>> stats = VarianceCalibrator(model).run(loader, max_batches=100)
        >>> stats["blocks.0.mlp"].var.shape
        torch.Size([3072])
    """

    def __init__(
        self,
        model: nn.Module,
        accelerator: Accelerator | None = None,
        covariance: bool = False,
        covariance_fraction: float = 1.0,
        seed: int = 0,
        heads: bool = False,
    ):
        self.model = model
        self.accelerator = accelerator
        self.covariance = bool(covariance)
        if not 0.0 < covariance_fraction <= 1.0:  # also refuses NaN
            raise ConfigError(f"covariance_fraction must be in (0, 1], got {covariance_fraction}")
        self.covariance_fraction = float(covariance_fraction)
        self.seed = seed
        if accelerator is not None:
            check_process_count(accelerator)
        base = accelerator.unwrap_model(model) if accelerator is not None else model
        self.heads = bool(heads)
        self.sites: list[MLPSite | AttentionSite] = list(find_mlp_sites(base))
        if self.heads:
            self.sites += find_attention_sites(base)

    def run(self, batches: Iterable[Any], max_batches: int | None = None) -> ActivationStats:
        """Run ``batches`` through the model and return the statistics of every site.

        Args:
            batches: Iterable of image tensors ``(B, C, H, W)``, of dicts holding
                ``pixel_values``, or of ``(images, labels)`` tuples.
            max_batches: Stop after this many batches per process (``None``: all).

        Returns:
            The merged :class:`ActivationStats` (over all processes, if an accelerator
            was given), on the CPU; identical on every process. A failure on one process
            (say NaN activations) raises there; the launcher (torchrun, accelerate) then
            stops the others, which would otherwise wait at the final gather.

        Raises:
            NonFiniteActivationError: (a ``FloatingPointError``) if an activation is NaN
                or infinite (names the site and the batch).
            StatisticsError: (a ``ValueError``) if no sample was seen at all.
            ConfigError: for a bad ``max_batches``.
        """
        from tqdm.auto import tqdm

        if max_batches is not None and max_batches < 1:
            raise ConfigError(f"max_batches must be a positive integer or None, got {max_batches}")
        stats = {
            s.name: NeuronStats.empty(s.width, s.fc2.weight.device, self.covariance)
            for s in self.sites
        }
        total = _length(batches)
        if max_batches is not None:
            total = max_batches if total is None else min(total, max_batches)
        accelerator = self.accelerator
        autocast = accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
        show = accelerator is None or accelerator.is_main_process
        modes = {module: module.training for module in self.model.modules()}
        handles = []
        draws = _Generators(self.seed)
        try:
            for site in self.sites:
                hook = _make_hook(stats[site.name], site.is_conv, self.covariance_fraction, draws)
                handles.append(site.fc2.register_forward_pre_hook(hook))
            self.model.eval()
            with torch.no_grad(), autocast:
                # islice: never fetch (and decode) a batch past max_batches
                source = batches if max_batches is None else itertools.islice(batches, max_batches)
                progress = tqdm(source, total=total, desc="calibrating", disable=not show or None)
                for index, batch in enumerate(progress):
                    self.model(self._inputs(batch))
                    _check_finite(stats, index)
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes.items():
                module.train(training)
        if accelerator is not None and accelerator.num_processes > 1:
            stats = _gather_and_merge(stats, accelerator)
        empty = [name for name, s in stats.items() if s.count == 0]
        if empty:
            raise StatisticsError(
                f"no calibration sample reached {empty[0]}: the batches were empty"
            )
        return ActivationStats(stats).to("cpu")

    def _inputs(self, batch: Any) -> Tensor:
        if isinstance(batch, Mapping):
            if "pixel_values" not in batch:
                raise OptionTypeError(
                    f"calibration batch dict has no 'pixel_values' (keys: {sorted(batch)})"
                )
            batch = batch["pixel_values"]
        elif isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise OptionTypeError(
                f"calibration batch must hold a tensor, got {type(batch).__name__}"
            )
        param = next(self.model.parameters())
        device = self.accelerator.device if self.accelerator is not None else param.device
        # A model cast to bf16/fp16 needs inputs of its dtype; autocast handles the rest.
        dtype = param.dtype if batch.is_floating_point() else None
        return batch.to(device=device, dtype=dtype, non_blocking=True)


def check_process_count(accelerator: Accelerator) -> None:
    """Raise :class:`~vbprune.ProcessCountError` unless the accelerator spans all
    ``WORLD_SIZE`` processes.

    torchrun on CPU without ``ACCELERATE_USE_CPU=1`` silently gives every rank its own
    single-process accelerator: each would read the whole dataset.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != world_size:
        raise ProcessCountError(
            f"accelerator has {accelerator.num_processes} process(es) but "
            f"WORLD_SIZE={world_size}; on CPU set ACCELERATE_USE_CPU=1 or use "
            "`accelerate launch --multi_gpu`"
        )


class _Generators(dict):
    """One seeded random generator per device, made when first needed (a model split
    over devices draws on each)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def __missing__(self, device: torch.device) -> torch.Generator:
        generator = self[device] = torch.Generator(device).manual_seed(self.seed)
        return generator


def _make_hook(acc: NeuronStats, is_conv: bool, fraction: float, draws: _Generators):
    channel_dim = 1 if is_conv else -1  # 1x1-conv MLPs see NCHW, linear MLPs (..., H)

    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].detach()
        generator = draws[x.device] if fraction < 1.0 and acc.c2 is not None else None
        acc.update(x, channel_dim=channel_dim, covariance_fraction=fraction, generator=generator)

    return hook


def _length(batches: Iterable[Any]) -> int | None:
    try:
        return len(batches)  # type: ignore[arg-type]
    except Exception:  # no length (generators, streaming datasets): no total in the bar
        return None


def _check_finite(stats: dict[str, NeuronStats], batch_index: int) -> None:
    # One device sync per batch: a sum is non-finite iff some element is.
    live = [(name, s) for name, s in stats.items() if s.count]
    if not live:
        return
    device = live[0][1].mean.device
    sums = torch.stack([(s.mean.sum() + s.m2.sum()).to(device) for _, s in live])
    if bool(torch.isfinite(sums).all()):
        return
    bad = next(name for (name, _), ok in zip(live, torch.isfinite(sums).tolist()) if not ok)
    raise NonFiniteActivationError(
        f"NaN or infinite activations in MLP {bad} (batch {batch_index}); check the inputs "
        "and the model's precision"
    )


def _gather_and_merge(stats: dict[str, NeuronStats], accelerator: Accelerator) -> dict:
    """Merge every process's moments exactly: all-gather (count, mean, M2 and, when
    collected, the co-moment matrix), then Chan."""
    names = list(stats)
    widths = [stats[n].mean.numel() for n in names]
    covariance = all(stats[n].c2 is not None for n in names)
    sizes = [2 * w + (w * w if covariance else 0) for w in widths]
    device = accelerator.device
    counts = torch.tensor([stats[n].count for n in names], dtype=torch.int64, device=device)
    parts = []
    for name in names:
        entry = stats[name]
        extra = [entry.c2.flatten()] if covariance else []
        parts.append(torch.cat([entry.mean, entry.m2, *extra]).to(device))
    flat = torch.cat(parts)
    world = accelerator.num_processes
    all_counts = accelerator.gather(counts).view(world, len(names)).tolist()  # (P, S)
    all_flat = accelerator.gather(flat).view(world, -1).cpu()  # (P, sum of sizes)
    merged = {}
    for rank in range(world):
        offset = 0
        for index, (name, width, size) in enumerate(zip(names, widths, sizes)):
            chunk = all_flat[rank, offset : offset + size]
            offset += size
            c2 = chunk[2 * width :].view(width, width) if covariance else None
            part = NeuronStats(all_counts[rank][index], chunk[:width], chunk[width : 2 * width], c2)
            merged[name] = merged[name].merge(part) if name in merged else part
    return merged
