"""The layout probe: make some hidden neurons constant, prune exactly those, compare.

This is how a row of the layout table (:mod:`vbprune.architectures.layouts`) is
verified on a real model. Where nothing couples the hidden neurons (``site.exact``),
removing a constant neuron and folding its mean into fc2's bias must leave the output
unchanged up to float rounding, and dropping it without the fold must not; where a hidden
LayerNorm or Global Response Norm couples them, the probe measures how approximate the
fold is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..architectures import MLPSite, find_mlp_sites
from ..architectures.interface import logits_of
from ..calibration import VarianceCalibrator
from ..core import surgery
from ..core.config import PruningConfig
from ..core.selection import PruningPlan, SitePlan
from ..pruning import apply_plan


@dataclass
class ProbeResult:
    """What :func:`probe` measured.

    Differences are the largest absolute change of any output, relative to the largest
    absolute output, after pruning the constant neurons: ``exact_difference`` over the
    exact sites (``site.exact``), ``no_fold_difference`` for the same neurons dropped
    without the fold, ``approximate_difference`` over the sites a hidden norm couples.

    Attributes:
        layouts: The table rows the model's sites matched.
        exact: Every site is exact (nothing couples its hidden neurons).
        removed: Hidden neurons made constant and pruned.
        exact_difference: Change with the fold, constant neurons of exact sites only
            (``None`` when no site is exact).
        no_fold_difference: The same without the fold: the fold matters where this is
            much larger than ``exact_difference``.
        approximate_difference: Change with the fold, coupled sites only (``None`` when
            every site is exact).
        tolerance: The largest ``exact_difference`` an exact layout may show.
        least_squares_difference: Change with least-squares compensation
            (``compensate="ls"``), constant neurons of exact sites only: also exact for
            constant neurons (``None`` when no site is exact).
    """

    layouts: list[str]
    exact: bool
    removed: int
    exact_difference: float | None
    no_fold_difference: float | None
    approximate_difference: float | None
    tolerance: float
    least_squares_difference: float | None = None

    @property
    def relative_difference(self) -> float:
        """The largest measured change (exact sites if any, else the coupled ones)."""
        found = [d for d in (self.exact_difference, self.approximate_difference) if d is not None]
        return max(found)

    @property
    def passed(self) -> bool:
        """The exact sites kept the outputs within tolerance, with the mean fold and with
        least squares (coupled sites are only measured)."""
        found = (self.exact_difference, self.least_squares_difference)
        return all(d is None or d <= self.tolerance for d in found)


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
        bias = surgery.ensure_bias(layer)  # a probe copy: a bias makes the value non-zero
        bias[rows.to(bias.device)] = 0.5
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


def _prune_constant(
    model: nn.Module, images: Tensor, names: set[str], every: int, compensate: bool | str
) -> float:
    """Make every ``every``-th neuron of the sites ``names`` constant in a copy, prune
    exactly those (with the fold, least squares or nothing); the relative change of the
    outputs."""
    model = copy.deepcopy(model)
    sites = [site for site in find_mlp_sites(model) if site.name in names]
    chosen = {site.name: _chosen(site, every) for site in sites}
    for site in sites:
        _make_constant(site, chosen[site.name])
    before = logits_of(model(images)).float()
    stats = VarianceCalibrator(model, covariance=compensate == "ls").run([images])
    plan = PruningPlan(PruningConfig(ratio=0.0))
    for site in find_mlp_sites(model):
        pruned = set(chosen[site.name].tolist()) if site.name in names else set()
        keep = [i for i in range(site.width) if i not in pruned]
        plan.sites[site.name] = SitePlan(
            site.width, keep, stats[site.name].mean[sorted(pruned)].tolist()
        )
    apply_plan(model, plan, compensate=compensate, stats=stats)
    after = logits_of(model(images)).float()
    return float((after - before).abs().max() / before.abs().max().clamp_min(1e-12))


def probe(
    model: nn.Module,
    images: Tensor,
    every: int = 4,
    tolerance: float = 1e-4,
    randomize: bool = True,
    seed: int = 0,
) -> ProbeResult:
    """Verify the layouts of ``model``: prune neurons made constant and compare outputs.

    Works on copies; ``model`` is not changed. Exact and coupled sites are probed
    separately, so one hidden norm cannot hide an error elsewhere, and the exact sites
    once more without the fold, to show that the fold is what keeps the outputs.

    Args:
        model: A model whose MLPs match the layout table.
        images: One batch it accepts, ``(B, C, H, W)``.
        every: Make every ``every``-th hidden neuron of each MLP constant.
        tolerance: Largest output change, relative to the largest output, an exact site
            may show (float32 rounding).
        randomize: Give 1-D parameters (norms, layer scales, biases) random values first,
            so that every MLP visibly contributes to the output.
        seed: Seed of ``randomize``.

    Returns:
        A :class:`ProbeResult`; ``passed`` says whether the exact sites kept the outputs.
    """
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        if randomize:
            _randomize(model, seed)
        sites = find_mlp_sites(model)
        exact = {site.name for site in sites if site.exact}
        coupled = {site.name for site in sites} - exact
        exact_difference = no_fold = approximate = least_squares = None
        if exact:
            exact_difference = _prune_constant(model, images, exact, every, compensate=True)
            no_fold = _prune_constant(model, images, exact, every, compensate=False)
            least_squares = _prune_constant(model, images, exact, every, compensate="ls")
        if coupled:
            approximate = _prune_constant(model, images, coupled, every, compensate=True)
    return ProbeResult(
        layouts=sorted({site.layout for site in sites}),
        exact=not coupled,
        removed=sum(len(_chosen(site, every)) for site in sites),
        exact_difference=exact_difference,
        no_fold_difference=no_fold,
        approximate_difference=approximate,
        tolerance=tolerance,
        least_squares_difference=least_squares,
    )
