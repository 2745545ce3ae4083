"""prune_model: select from statistics, then shrink every MLP and fold the removed means."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .architectures import MLPSite, find_mlp_sites
from .selection import PruningPlan, plan_pruning, validate_options
from .statistics import NeuronStats
from .surgery import fold_means_into_bias, shrink_mlp


@dataclass
class PruningResult:
    """What :func:`prune_model` did.

    Attributes:
        plan: The applied :class:`PruningPlan` (kept indices and folded means per site).
        original_sizes: Hidden width per site before pruning.
        hidden_sizes: Hidden width per site after pruning.
    """

    plan: PruningPlan
    original_sizes: dict[str, int]
    hidden_sizes: dict[str, int]

    @property
    def num_pruned(self) -> int:
        """Total number of hidden neurons removed."""
        return sum(self.original_sizes.values()) - sum(self.hidden_sizes.values())


def check_stats(sites: list[MLPSite], stats: Mapping[str, NeuronStats]) -> None:
    """Raise ``ValueError`` unless ``stats`` cover every site with its width."""
    missing = [s.name for s in sites if s.name not in stats]
    if missing:
        raise ValueError(
            f"statistics have no entry for {len(missing)} MLP site(s) of this model, e.g. "
            f"{missing[0]!r}; were they computed on another model?"
        )
    for site in sites:
        entry = stats[site.name]
        shapes = {tuple(entry.mean.shape), tuple(entry.m2.shape)}
        if shapes != {(site.hidden_size,)}:
            widths = " and ".join(str(shape) for shape in sorted(shapes))
            raise ValueError(
                f"statistics of {site.name} have shape {widths}, the model has "
                f"{site.hidden_size} neurons"
            )
    extra = sorted(set(stats) - {s.name for s in sites})
    if extra:
        warnings.warn(f"ignoring statistics of sites not in the model: {extra}", stacklevel=3)


def _check_plan(sites: list[MLPSite], plan: PruningPlan) -> None:
    names = {site.name for site in sites}
    extra = sorted(set(plan.sites) - names)
    if extra:
        raise ValueError(f"plan does not fit the model: it has no MLP {extra[0]!r}")
    for site in sites:
        entry = plan.sites.get(site.name)
        if entry is None or entry.width != site.hidden_size:
            found = "missing" if entry is None else f"width {entry.width}"
            raise ValueError(
                f"plan does not fit the model: {site.name} has width {site.hidden_size}, "
                f"plan entry {found}"
            )
        keep = entry.keep
        if not all(isinstance(i, int) for i in keep) or any(
            a >= b for a, b in itertools.pairwise(keep)
        ):
            raise ValueError(f"plan entry of {site.name}: keep must be increasing integers")
        if keep and (keep[0] < 0 or keep[-1] >= entry.width):
            raise ValueError(f"plan entry of {site.name}: keep indices outside [0, {entry.width})")
        if not keep:
            raise ValueError(f"plan entry of {site.name} keeps no neuron")
        if len(entry.fold_mean) != entry.width - len(keep) or not all(
            math.isfinite(m) for m in entry.fold_mean
        ):
            raise ValueError(
                f"plan entry of {site.name}: fold_mean must hold one finite value per "
                "removed neuron"
            )


def magnitude_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weight-magnitude score of every hidden neuron: ``||W1[j, :]|| * ||W2[:, j]||``.

    The baseline criterion the paper compares variance with (no data needed).
    """
    scores = {}
    for site in find_mlp_sites(model):
        w1 = site.fc1.weight.detach().flatten(1).float()  # (H, in)
        w2 = site.fc2.weight.detach().flatten(1).float()  # (out, H)
        scores[site.name] = (w1.norm(dim=1) * w2.norm(dim=0)).cpu()
    return scores


def apply_plan(model: nn.Module, plan: PruningPlan, compensate: bool = True) -> dict[str, int]:
    """Apply a :class:`PruningPlan` to ``model`` in place.

    Args:
        model: The model the plan was made for (every site must have the plan's width).
        plan: From :func:`vbprune.plan_pruning` (or :meth:`PruningPlan.from_dict`).
        compensate: Fold the removed neurons' means into fc2's bias (the paper's
            mean-shift compensation). ``False`` only drops them (ablation).

    Returns:
        The new hidden width per site.

    Raises:
        ValueError: before anything is modified, if the plan does not fit the model.
    """
    sites = find_mlp_sites(model)
    _check_plan(sites, plan)
    with torch.no_grad():
        for site in sites:
            entry = plan.sites[site.name]
            if len(entry.keep) == entry.width:
                continue
            if compensate:
                pruned = torch.tensor(entry.pruned, dtype=torch.int64)
                mean = torch.tensor(entry.fold_mean, dtype=torch.float64)
                fold_means_into_bias(site.fc2, pruned, mean)
            shrink_mlp(site, torch.tensor(entry.keep, dtype=torch.int64))
    return {site.name: site.hidden_size for site in sites}


def prune_model(
    model: nn.Module,
    stats: Mapping[str, NeuronStats],
    ratio: float,
    scope: str = "global",
    compensate: bool = True,
    min_keep: int = 1,
    round_to: int = 1,
    criterion: str = "variance",
) -> PruningResult:
    """Variance-based pruning of every MLP of ``model``, in place.

    Removes the lowest-variance hidden neurons (see :func:`vbprune.select_neurons`) and,
    with ``compensate``, folds their mean activations into the next layer's bias, so a
    neuron with constant activation is removed without changing the output.

    Args:
        model: A supported timm or transformers model.
        stats: Calibration statistics of this model (:class:`~vbprune.ActivationStats`).
        ratio: Fraction of MLP hidden neurons to remove, in [0, 1).
        scope: ``"global"`` (the paper's ranking over all MLPs) or ``"layer"``.
        compensate: Fold removed means into fc2's bias (mean-shift compensation).
        min_keep: No MLP keeps fewer neurons than this.
        round_to: Kept widths are multiples of this (hardware-friendly), total kept as
            close as possible to the target.
        criterion: ``"variance"`` (the method), or the baselines ``"random"`` and
            ``"magnitude"`` (:func:`magnitude_scores`).

    Returns:
        A :class:`PruningResult` with the plan and the widths before and after.

    Raises:
        ValueError: before anything is modified, for a ratio outside [0, 1), an unknown
            scope, statistics missing a site or of the wrong width, or an unsupported
            model (:class:`~vbprune.UnsupportedModelError`).
    """
    validate_options(ratio, scope, min_keep, round_to)
    sites = find_mlp_sites(model)
    check_stats(sites, stats)
    original = {site.name: site.hidden_size for site in sites}
    ordered = {site.name: stats[site.name] for site in sites}
    scores = magnitude_scores(model) if criterion == "magnitude" else None
    plan = plan_pruning(ordered, ratio, scope, min_keep, round_to, criterion, scores=scores)
    hidden_sizes = apply_plan(model, plan, compensate=compensate)
    return PruningResult(plan, original, hidden_sizes)
