"""prune_model: select from statistics, then shrink every MLP and fold the removed means.

The glue of the method: :mod:`vbprune.architectures` finds the MLPs, :mod:`vbprune.core`
selects and operates on them.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .architectures import MLPSite, find_mlp_sites, model_backend
from .architectures.widths import mlp_records
from .core.compat import RenamedAttribute
from .core.compensation import lost_output_variance, obs_removal_scores
from .core.config import PruningConfig, compensation, resolve_config
from .core.errors import PlanError, StatisticsError
from .core.selection import PruningPlan, plan_pruning
from .core.statistics import NeuronStats


@dataclass
class PruningResult:
    """What :func:`prune_model` did.

    Attributes:
        plan: The applied :class:`PruningPlan` (its config, and the kept indices and
            folded means per site).
        original_widths: Hidden width per site before pruning.
        widths: Hidden width per site after pruning.
        approximate_sites: Sites whose fold is approximate, not exact, because a hidden
            LayerNorm or Global Response Norm couples their neurons (``site.exact``).
        lost_variance: With ``diagnose`` and covariance statistics: per pruned site, the
            fraction of the variance of fc2's output on the calibration data that the
            removal loses, with the mean fold (``"mean"``) and, when used, least squares
            (``"ls"``); empty otherwise.
    """

    plan: PruningPlan
    original_widths: dict[str, int]
    widths: dict[str, int]
    approximate_sites: list[str] = field(default_factory=list)
    lost_variance: dict[str, dict[str, float]] = field(default_factory=dict)

    # vbprune 0.1's names
    original_sizes = RenamedAttribute("original_widths")
    hidden_sizes = RenamedAttribute("widths")

    @property
    def config(self) -> PruningConfig:
        """The options the model was pruned with."""
        return self.plan.config

    @property
    def num_pruned(self) -> int:
        """Total number of hidden neurons removed."""
        return sum(self.original_widths.values()) - sum(self.widths.values())


def check_stats(sites: list[MLPSite], stats: Mapping[str, NeuronStats]) -> None:
    """Raise :class:`~vbprune.StatisticsError` unless ``stats`` cover every site with its
    width."""
    missing = [s.name for s in sites if s.name not in stats]
    if missing:
        raise StatisticsError(
            f"statistics have no entry for {len(missing)} MLP site(s) of this model, e.g. "
            f"{missing[0]!r}; were they computed on another model?"
        )
    for site in sites:
        entry = stats[site.name]
        shapes = {tuple(entry.mean.shape), tuple(entry.m2.shape)}
        if shapes != {(site.width,)}:
            widths = " and ".join(str(shape) for shape in sorted(shapes))
            raise StatisticsError(
                f"statistics of {site.name} have shape {widths}, the model has {site.width} neurons"
            )
    extra = sorted(set(stats) - {s.name for s in sites})
    if extra:
        warnings.warn(f"ignoring statistics of sites not in the model: {extra}", stacklevel=3)


def _check_plan(sites: list[MLPSite], plan: PruningPlan) -> None:
    names = {site.name for site in sites}
    extra = sorted(set(plan.sites) - names)
    if extra:
        raise PlanError(f"plan does not fit the model: it has no MLP {extra[0]!r}")
    for site in sites:
        entry = plan.sites.get(site.name)
        if entry is None or entry.width != site.width:
            found = "missing" if entry is None else f"width {entry.width}"
            raise PlanError(
                f"plan does not fit the model: {site.name} has width {site.width}, "
                f"plan entry {found}"
            )
        keep = entry.keep
        if not all(isinstance(i, int) for i in keep) or any(
            a >= b for a, b in itertools.pairwise(keep)
        ):
            raise PlanError(f"plan entry of {site.name}: keep must be increasing integers")
        if keep and (keep[0] < 0 or keep[-1] >= entry.width):
            raise PlanError(f"plan entry of {site.name}: keep indices outside [0, {entry.width})")
        if not keep:
            raise PlanError(f"plan entry of {site.name} keeps no neuron")
        if len(entry.fold_mean) != entry.width - len(keep) or not all(
            math.isfinite(m) for m in entry.fold_mean
        ):
            raise PlanError(
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


def obs_scores(model: nn.Module, stats: Mapping[str, NeuronStats]) -> dict[str, torch.Tensor]:
    """Optimal-Brain-Surgeon score of every hidden neuron, for ``criterion="obs"``.

    Per MLP, the greedy order in which removing neurons least increases fc2's output error
    once least squares compensates them (:func:`vbprune.core.compensation.obs_removal_scores`);
    the scores are in fc2's output units, so one global ranking compares MLPs. Needs
    statistics with covariance. Cost: about H^3 float64 multiply-adds per MLP (DeiT-B: 1.7 s
    per MLP on a 2-core CPU).

    Raises:
        StatisticsError: if a site has no finite covariance of the right shape.
    """
    sites = find_mlp_sites(model)
    _check_covariance(sites, stats, 'criterion="obs"')
    scores = {}
    for site in sites:
        w2 = site.fc2.weight.detach().flatten(1)
        cov = stats[site.name].cov.to(w2.device)
        scores[site.name] = obs_removal_scores(w2, cov).cpu()
    return scores


def _check_covariance(
    sites: list[MLPSite], stats: Mapping[str, NeuronStats] | None, need: str = 'compensate="ls"'
) -> None:
    """Refuse ``need`` (least squares, or the OBS criterion) without a usable covariance
    of every site."""
    if stats is None:
        raise StatisticsError(
            f"{need} needs the calibration statistics: apply_plan(model, plan, "
            "stats=...) with VarianceCalibrator(model, covariance=True) statistics"
        )
    for site in sites:
        entry = stats.get(site.name)
        if entry is None or entry.c2 is None:
            raise StatisticsError(
                f"{need} needs the covariance of every MLP; {site.name} has none: "
                "calibrate with VarianceCalibrator(model, covariance=True) (or "
                "`vbprune calibrate --covariance`)"
            )
        if entry.c2.shape != (site.width, site.width):
            raise StatisticsError(
                f"covariance of {site.name} has shape {tuple(entry.c2.shape)}, the model has "
                f"{site.width} neurons"
            )
        if not bool(torch.isfinite(entry.c2).all()):
            raise StatisticsError(f"covariance of {site.name} holds NaN or infinite values")


def apply_plan(
    model: nn.Module,
    plan: PruningPlan,
    compensate: bool | str | None = None,
    stats: Mapping[str, NeuronStats] | None = None,
) -> dict[str, int]:
    """Apply a :class:`PruningPlan` to ``model`` in place.

    Args:
        model: The model the plan was made for (every site must have the plan's width).
        plan: From :func:`vbprune.plan_pruning` (or :meth:`PruningPlan.from_dict`).
        compensate: ``"mean"`` folds the removed neurons' means into fc2's bias (the
            paper's mean-shift compensation), ``"ls"`` lets fc2 predict them from the kept
            neurons by least squares (needs ``stats`` with covariance), ``"none"`` only
            drops them (ablation); ``True``/``False`` mean ``"mean"``/``"none"``. Default:
            what the plan's config says.
        stats: The calibration statistics the plan was made from; needed (with
            covariance) for ``"ls"``.

    Returns:
        The new hidden width per site.

    Raises:
        PlanError: (a ``ValueError``) before anything is modified, if the plan does not
            fit the model.
        StatisticsError: before anything is modified, for ``"ls"`` without a finite
            covariance of every site.
    """
    sites = find_mlp_sites(model)
    _check_plan(sites, plan)
    mode = compensation(compensate, default=plan.config.compensate)
    if mode == "ls":
        _check_covariance(sites, stats)
    _apply(model, sites, plan, mode, stats)
    return {site.name: site.width for site in sites}


def _apply(
    model: nn.Module,
    sites: list[MLPSite],
    plan: PruningPlan,
    mode: str,
    stats: Mapping[str, NeuronStats] | None,
    lost: dict[str, dict[str, float]] | None = None,
) -> None:
    """The surgery of a checked plan; fills ``lost`` (the report's diagnostics: the share
    of each fc2's output variance lost with the mean fold and with ``mode``) when given
    and the statistics hold covariances."""
    with torch.no_grad():
        for site in sites:
            entry = plan.sites[site.name]
            if len(entry.keep) == entry.width:
                continue
            keep = torch.tensor(entry.keep, dtype=torch.int64)
            pruned = torch.tensor(entry.pruned, dtype=torch.int64)
            moments = stats[site.name] if stats is not None else None
            diagnose = lost is not None and moments is not None and moments.c2 is not None
            w2 = site.fc2.weight.detach().flatten(1).clone() if diagnose else None  # as was
            delta_w = None
            if mode == "mean":
                site.fold(pruned, torch.tensor(entry.fold_mean, dtype=torch.float64))
            elif mode == "ls":
                delta_w = site.compensate_least_squares(keep, pruned, moments.mean, moments.cov)
            if diagnose:
                cov = moments.cov.to(w2.device)
                lost[site.name] = {"mean": round(lost_output_variance(w2, keep, pruned, cov), 6)}
                if delta_w is not None:
                    lost[site.name]["ls"] = round(
                        lost_output_variance(w2, keep, pruned, cov, delta_w), 6
                    )
            site.shrink(keep)
    if model_backend(model) == "transformers":
        # the config describes the pruned model (save_pretrained writes it; the pruned
        # class of vbprune.hf_remote rebuilds the model from it)
        model.config.mlp_widths, model.config.mlp_layout = mlp_records(model)


def prune_model(
    model: nn.Module,
    stats: Mapping[str, NeuronStats],
    ratio: float | None = None,
    scope: str | None = None,
    compensate: bool | str | None = None,
    min_keep: int | None = None,
    round_to: int | None = None,
    criterion: str | None = None,
    seed: int | None = None,
    *,
    config: PruningConfig | None = None,
    diagnose: bool = False,
) -> PruningResult:
    """Variance-based pruning of every MLP of ``model``, in place.

    Removes the lowest-variance hidden neurons (see :func:`vbprune.select_neurons`) and,
    with ``compensate``, folds their mean activations into the next layer's bias, so a
    neuron with constant activation is removed without changing the output.

    Options come either as one ``config`` (``prune_model(model, stats,
    config=PruningConfig(ratio=0.5))``) or as keywords (``prune_model(model, stats,
    ratio=0.5)``); options left unset take the :class:`~vbprune.PruningConfig` defaults.

    Args:
        model: A supported timm or transformers model.
        stats: Calibration statistics of this model (:class:`~vbprune.ActivationStats`).
        ratio: Fraction of MLP hidden neurons to remove, in [0, 1).
        scope: ``"global"`` (the paper's ranking over all MLPs, default) or ``"layer"``.
        compensate: ``"mean"``: fold removed means into fc2's bias (mean-shift
            compensation; default); ``"ls"``: least squares from the kept neurons (needs
            statistics with covariance); ``"none"``: drop them (ablation).
        min_keep: No MLP keeps fewer neurons than this (default 1).
        round_to: Kept widths are multiples of this (hardware-friendly), total kept as
            close as possible to the target (default 1).
        criterion: ``"variance"`` (the method, default), the baselines ``"random"``
            and ``"magnitude"`` (:func:`magnitude_scores`), or ``"obs"`` (the greedy
            least-squares error, :func:`obs_scores`; needs statistics with covariance).
        seed: Seed of the ``"random"`` criterion (default 0).
        config: All options at once, instead of the keywords above.
        diagnose: With covariance statistics, measure per MLP the share of fc2's output
            variance the removal loses (``PruningResult.lost_variance``); costs about
            ``out * H^2`` multiply-adds per MLP (DeiT-B: 87 G, seconds on a CPU).

    Returns:
        A :class:`PruningResult` with the plan and the widths before and after.

    Raises:
        ConfigError: (a ``ValueError``) before anything is modified, for a ratio outside
            [0, 1), an unknown scope or criterion, or options given twice.
        StatisticsError: statistics missing a site or of the wrong width.
        UnsupportedModelError: a model vbprune cannot prune.
    """
    config = resolve_config(
        config, ratio=ratio, scope=scope, compensate=compensate, min_keep=min_keep,
        round_to=round_to, criterion=criterion, seed=seed,
    )  # fmt: skip
    sites = find_mlp_sites(model)
    check_stats(sites, stats)
    original = {site.name: site.width for site in sites}
    ordered = {site.name: stats[site.name] for site in sites}
    if config.compensate == "ls":  # before any work
        _check_covariance(sites, stats)
    scores = None
    if config.criterion == "magnitude":
        scores = magnitude_scores(model)
    elif config.criterion == "obs":
        scores = obs_scores(model, ordered)
    plan = plan_pruning(ordered, scores=scores, config=config)
    approximate = [site.name for site in sites if not site.exact]
    lost: dict[str, dict[str, float]] = {}
    _apply(model, sites, plan, config.compensate, stats, lost if diagnose else None)
    widths = {site.name: site.width for site in sites}
    return PruningResult(plan, original, widths, approximate, lost)
