"""The layout probe: make some hidden neurons constant, prune exactly those, compare.

This is how a row of the layout table (:mod:`vbprune.architectures.layouts`) is
verified on a real model. Where nothing couples the hidden neurons (``site.exact``),
removing a constant neuron and folding its mean into fc2's bias must leave the output
unchanged up to float rounding; where a hidden LayerNorm or Global Response Norm couples
them, the probe measures how approximate the fold is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..architectures import MLPSite, find_mlp_sites
from ..architectures.interface import logits_of
from ..calibration import VarianceCalibrator
from ..core.config import PruningConfig
from ..core.selection import PruningPlan, SitePlan
from ..pruning import apply_plan


@dataclass
class ProbeResult:
    """What :func:`probe` measured.

    Attributes:
        layouts: The table rows the model's sites matched.
        exact: Every site is exact (nothing couples its hidden neurons).
        removed: Hidden neurons made constant and pruned.
        max_difference: Largest absolute change of any output.
        scale: Largest absolute output (the difference is judged relative to it).
        tolerance: The relative tolerance an exact model must meet.
    """

    layouts: list[str]
    exact: bool
    removed: int
    max_difference: float
    scale: float
    tolerance: float

    @property
    def relative_difference(self) -> float:
        """``max_difference`` relative to the output scale."""
        return self.max_difference / max(self.scale, 1e-12)

    @property
    def passed(self) -> bool:
        """An exact model kept its outputs within tolerance (approximate ones pass: the
        probe then only measures)."""
        return not self.exact or self.relative_difference <= self.tolerance


def _chosen(site: MLPSite, every: int) -> Tensor:
    return torch.arange(0, site.width, every)[: max(site.width - 1, 1)]


def _make_constant(site: MLPSite, chosen: Tensor) -> None:
    """Zero the chosen neurons' fc1 rows (and gate rows) and every per-channel weight on
    their path, so their value at fc2's input is a non-zero constant: act(bias) through
    biases of the modules between (a zero constant would not test the fold)."""
    rows = torch.cat([chosen, chosen + site.width]) if site.packed else chosen
    for layer in (site.fc1, site.gate):
        if layer is None:
            continue
        layer.weight[rows.to(layer.weight.device)] = 0
        if layer.bias is not None:
            layer.bias[rows.to(layer.bias.device)] = 0.5
    modules = [*site.channels, *([site.grn] if site.grn is not None else [])]
    for module in modules:
        for name, value in module.named_parameters(recurse=False):
            if "weight" in name or "gamma" in name:
                if value.shape[-1] == site.width:
                    value[..., chosen.to(value.device)] = 0
                else:
                    value[chosen.to(value.device)] = 0


def _randomize(model: nn.Module, seed: int) -> None:
    # Default inits hide the MLPs (layer scale 1e-5, zero heads): give every 1-D
    # parameter and BatchNorm statistic a visible value so outputs depend on each MLP.
    generator = torch.Generator().manual_seed(seed)
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        if not value.is_floating_point() or value.dim() == 0:
            continue
        noise = 0.1 * torch.randn(value.shape, generator=generator).to(value)
        if name.endswith("running_var"):
            value.copy_(1.0 + noise.abs())
        elif value.abs().max() < 1e-3:  # a zero- or tiny-initialised head or projection
            value.copy_(noise)
        elif value.dim() == 1 or value.squeeze().dim() <= 1:
            centre = 0.0 if name.endswith(("bias", "running_mean", "beta")) else 1.0
            value.copy_(centre + noise)


def probe(
    model: nn.Module,
    images: Tensor,
    every: int = 4,
    tolerance: float = 1e-4,
    randomize: bool = True,
    seed: int = 0,
) -> ProbeResult:
    """Verify the layouts of ``model``: prune neurons made constant and compare outputs.

    Works on a copy; ``model`` is not changed.

    Args:
        model: A model whose MLPs match the layout table.
        images: One batch it accepts, ``(B, C, H, W)``.
        every: Make every ``every``-th hidden neuron of each MLP constant.
        tolerance: Largest output change, relative to the largest output, an exact model
            may show (float32 rounding).
        randomize: Give 1-D parameters (norms, layer scales, biases) random values first,
            so that every MLP visibly contributes to the output.
        seed: Seed of ``randomize``.

    Returns:
        A :class:`ProbeResult`; ``passed`` says whether an exact model kept its outputs.
    """
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        if randomize:
            _randomize(model, seed)
        sites = find_mlp_sites(model)
        chosen = {site.name: _chosen(site, every) for site in sites}
        for site in sites:
            _make_constant(site, chosen[site.name])
        before = logits_of(model(images))
        stats = VarianceCalibrator(model).run([images])
        plan = PruningPlan(PruningConfig(ratio=0.0))
        for site in sites:
            pruned = set(chosen[site.name].tolist())
            keep = [i for i in range(site.width) if i not in pruned]
            mean = stats[site.name].mean[sorted(pruned)].tolist()
            plan.sites[site.name] = SitePlan(site.width, keep, mean)
        apply_plan(model, plan, compensate=True)
        after = logits_of(model(images))
    return ProbeResult(
        layouts=sorted({site.layout for site in sites}),
        exact=all(site.exact for site in sites),
        removed=sum(len(c) for c in chosen.values()),
        max_difference=float((after.float() - before.float()).abs().max()),
        scale=float(before.float().abs().max()),
        tolerance=tolerance,
    )
