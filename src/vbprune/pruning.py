"""prune_model: score and select neurons, then compensate for them in fc2 and shrink.

The glue of the method: :mod:`vbprune.architectures` finds the MLPs and shows each as
:class:`~vbprune.core.units.SiteUnits`; :mod:`vbprune.core` scores them (a registered
criterion), selects, and computes the registered compensation; the sites apply it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .architectures import (
    AttentionSite,
    MLPSite,
    find_mlp_sites,
)
from .core.config import (
    PruningConfig,
    compensation,
    resolve_config,
)
from .core.selection import (
    PruningPlan,
    check_plan,
    plan_from_scores,
    score_units,
)
from .core.statistics import NeuronStats
from .planning.budget import budget_plan, record_achieved
from .planning.latency import LatencyTable
from .planning.steps import (
    apply_checked,
    covariance_need,
    model_sites,
    progress,
    site_units,
)

Site = MLPSite | AttentionSite


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
            removal loses, with the mean fold (``"mean"``) and, when the compensation
            also changes fc2's weights, with it (``"ls"``); empty otherwise.
        original_heads: With ``heads=True``: heads per attention site before pruning.
        heads: With ``heads=True``: heads per attention site after pruning.
        collapsed_sites: MLPs that keep under 2 % of their neurons, or fewer than twice
            ``round_to`` (:func:`collapsed`); :func:`prune_model` warns of them once.

    With a budget (or heads) ``plan.budget`` says what was asked and achieved: the
    measure (MACs, parameters or latency), the dense model's total of it, the share
    asked, the share predicted and the share counted after the pruning (for latency:
    measured, with the device, the batch and each refinement step), and with heads the
    weight of heads against neurons chosen (and the KL of each candidate).
    """

    plan: PruningPlan
    original_widths: dict[str, int]
    widths: dict[str, int]
    approximate_sites: list[str] = field(default_factory=list)
    lost_variance: dict[str, dict[str, float]] = field(default_factory=dict)
    original_heads: dict[str, int] = field(default_factory=dict)
    heads: dict[str, int] = field(default_factory=dict)
    collapsed_sites: list[str] = field(default_factory=list)

    @property
    def config(self) -> PruningConfig:
        """The options the model was pruned with."""
        return self.plan.config

    @property
    def num_pruned(self) -> int:
        """Total number of hidden neurons removed."""
        return sum(self.original_widths.values()) - sum(self.widths.values())

    @property
    def budget(self) -> dict[str, Any]:
        """The budget asked for and achieved (``plan.budget``; empty for a plain ratio)."""
        return self.plan.budget

    def __repr__(self) -> str:  # the dataclass's would print every kept index
        before, after = sum(self.original_widths.values()), sum(self.widths.values())
        config = self.config
        heads = ""
        if self.heads:
            was, now = sum(self.original_heads.values()), sum(self.heads.values())
            heads = f", {was - now} of {was} heads from {len(self.heads)} attentions"
        achieved = self.budget.get("achieved")
        reached = f" (achieved {achieved:.3g})" if achieved is not None else ""
        return (
            f"PruningResult({self.num_pruned} of {before} neurons removed from "
            f"{len(self.widths)} MLPs ({before} -> {after}){heads}; {config.describe()}"
            f"{reached}, {config.scope}, criterion {config.criterion}, compensate "
            f"{config.compensate}"
            + (f"; {len(self.approximate_sites)} approximate" if self.approximate_sites else "")
            + ")"
        )


def score_neurons(
    model: nn.Module,
    stats: Mapping[str, NeuronStats] | None = None,
    criterion: str = "variance",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Scores of every MLP neuron of ``model`` by a registered criterion (lowest removed
    first), e.g. for :func:`vbprune.plan_pruning`'s ``scores`` or to inspect a ranking.

    Args:
        model: A supported timm or transformers model.
        stats: Its calibration statistics (not needed by ``"magnitude"``).
        criterion: A name of :data:`vbprune.core.criteria.CRITERIA`.
        seed: Seed of random criteria.

    Raises:
        ConfigError: an unknown criterion.
        StatisticsError: statistics missing or unfit (or without the covariance that
            the criterion needs).
    """
    config = PruningConfig(0.0, criterion=criterion, seed=seed)
    units = site_units(find_mlp_sites(model), stats, covariance_need(config, "criterion"))
    return score_units(units, config)


def magnitude_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weight-magnitude score of every hidden neuron: ``||W1[j, :]|| * ||W2[:, j]||``
    (a gated neuron's input rows: its gate and value rows), the baseline criterion the
    paper compares variance with (no data needed); ``score_neurons(model, None,
    "magnitude")``."""
    return score_neurons(model, None, "magnitude")


def obs_scores(model: nn.Module, stats: Mapping[str, NeuronStats]) -> dict[str, torch.Tensor]:
    """Optimal-Brain-Surgeon score of every hidden neuron, for ``criterion="obs"``
    (``score_neurons(model, stats, "obs")``).

    Per MLP, the greedy order in which removing neurons least increases fc2's output error
    once least squares compensates them
    (:func:`vbprune.core.least_squares.obs_removal_scores`); the scores are in fc2's
    output units, so one global ranking compares MLPs. Needs statistics with covariance.
    Cost: about H^3 float64 multiply-adds per MLP (DeiT-B: 1.7 s per MLP on a 2-core CPU).

    Raises:
        StatisticsError: if a site has no finite covariance of the right shape.
    """
    return score_neurons(model, stats, "obs")


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
        compensate: A registered compensation (:data:`vbprune.core.compensation.
            COMPENSATIONS`): ``"mean"`` folds the removed neurons' means into fc2's bias
            (the paper's mean-shift compensation; the means are in the plan), ``"ls"``
            lets fc2 predict them from the kept neurons by least squares (needs ``stats``
            with covariance), ``"none"`` only drops them (ablation); ``True``/``False``
            mean ``"mean"``/``"none"``. Default: what the plan's config says.
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
    heads = any(entry.kind == "attention" for entry in plan.sites.values())
    sites, others = model_sites(model, heads)
    check_plan(plan, {site.name: site.width for site in sites})
    mode = compensation(compensate, default=plan.config.compensate)
    config = dataclasses.replace(plan.config, compensate=mode)
    need = covariance_need(config, "compensate")
    apply_checked(model, sites, plan, mode, site_units(sites, stats, need, others=others))
    return {site.name: site.width for site in sites if site.kind == "mlp"}


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
    images: Tensor | Iterable[Any] | None = None,
    latency_table: LatencyTable | None = None,
    plan: PruningPlan | None = None,
) -> PruningResult:
    """Variance-based pruning of every MLP of ``model`` (and, with ``heads=True``, of its
    attention heads), in place.

    Removes the lowest-variance hidden neurons (see :func:`vbprune.select_neurons`) and,
    with ``compensate``, folds their mean activations into the next layer's bias, so a
    neuron with constant activation is removed without changing the output.

    Options come either as one ``config`` (``prune_model(model, stats,
    config=PruningConfig(ratio=0.5))``) or as keywords (``prune_model(model, stats,
    ratio=0.5)``); options left unset take the :class:`~vbprune.PruningConfig` defaults.
    A budget (``PruningConfig(target_macs=0.3, heads=True, compensate="ls")``) removes
    the units of least score per MAC (or parameter) saved until the model fits it; a
    latency budget (``PruningConfig(target_latency=1 / 1.5, heads=True)``: 1.5x faster on
    the device the model is on) ranks them per second saved (a per-site latency table)
    and checks the plan by timing pruned copies.

    Args:
        model: A supported timm or transformers model.
        stats: Calibration statistics of this model (:class:`~vbprune.ActivationStats`;
            with heads, from ``VarianceCalibrator(model, heads=True)``).
        ratio: Fraction of MLP hidden neurons to remove, in [0, 1).
        scope: ``"global"`` (the paper's ranking over all MLPs, default) or ``"layer"``.
        compensate: ``"mean"``: fold removed means into fc2's bias (mean-shift
            compensation; default); ``"ls"``: least squares from the kept neurons (needs
            statistics with covariance); ``"none"``: drop them (ablation).
        min_keep: No MLP keeps fewer neurons than this (default 1); every attention
            keeps at least one head.
        round_to: Kept widths are multiples of this (hardware-friendly), total kept as
            close as possible to the target (default 1; with a budget, widths round down).
        criterion: ``"variance"`` (the method, default for a ratio), ``"fluctuation"``
            (default with heads or a budget, unless ``"ls"``: then ``"obs"``), the
            baselines ``"random"`` and
            ``"magnitude"`` (:func:`magnitude_scores`), or ``"obs"`` (the greedy
            least-squares error, :func:`obs_scores`; needs statistics with covariance).
        seed: Seed of the ``"random"`` criterion (default 0).
        config: All options at once, instead of the keywords above (budgets and heads
            only this way).
        diagnose: With covariance statistics, measure per MLP the share of fc2's output
            variance the removal loses (``PruningResult.lost_variance``); costs about
            ``out * H^2`` multiply-adds per MLP (DeiT-B: 87 G, seconds on a CPU).
        images: With heads and no ``head_weight``: calibration images (a tensor, or
            batches) on which each weight of heads against neurons is tried, keeping the
            plan whose logits are closest (KL) to the dense model's; MLP-only pruning to
            the same budget is among the candidates, so the result is never further from
            the dense model there. Without images the default weight is used.
        latency_table: With ``target_latency``: the :func:`vbprune.latency_table` of
            ``model`` on the device it is on (default: measured now, or read from the
            cache). The plan is then refined by timing pruned copies against the dense
            model, and ``result.budget["achieved"]`` is the measured share.
        plan: A plan made for this model and ``config`` elsewhere, applied instead of
            making one: how every process of a multi-process run applies the main
            process's plan (timings and the KL choice of heads may differ between them).

    Returns:
        A :class:`PruningResult` with the plan and the widths (and heads) before and after.

    Raises:
        ConfigError: (a ``ValueError``) before anything is modified, for a ratio outside
            [0, 1), a budget outside (0, 1] or out of reach (the message names the
            reachable minimum), an unknown scope or criterion, or options given twice.
        StatisticsError: statistics missing a site or of the wrong width.
        UnsupportedModelError: a model vbprune cannot prune (or, with heads, whose
            attention cannot lose heads).
    """
    config = resolve_config(
        config, ratio=ratio, scope=scope, compensate=compensate, min_keep=min_keep,
        round_to=round_to, criterion=criterion, seed=seed,
    )  # fmt: skip
    sites, others = model_sites(model, config.heads)
    units = site_units(sites, stats, covariance_need(config), required=True, others=others)
    original = {site.name: site.width for site in sites if site.kind == "mlp"}
    original_heads = {site.name: site.num_heads for site in sites if site.kind == "attention"}
    if plan is not None:
        check_plan(plan, {site.name: site.width for site in sites})
    else:
        scores = score_units(units, config, progress(f"scoring ({config.criterion})",
                                                     len(units)))  # fmt: skip
        if config.ratio is not None and not config.heads:
            plan = plan_from_scores(units, scores, config)
        else:
            plan = budget_plan(model, sites, units, scores, config, images, latency_table)
    approximate = [site.name for site in sites if not site.exact]
    lost: dict[str, dict[str, float]] = {}
    apply_checked(model, sites, plan, config.compensate, units, lost if diagnose else None)
    if plan.budget and "achieved" not in plan.budget:
        record_achieved(model, plan.budget)
    widths = {site.name: site.width for site in sites if site.kind == "mlp"}
    heads = {site.name: site.num_heads for site in sites if site.kind == "attention"}
    collapsed_sites = collapsed(original, widths, config.round_to)
    if collapsed_sites:
        _warn_collapse(collapsed_sites, original, widths)
    return PruningResult(plan, original, widths, approximate, lost, original_heads, heads,
                         collapsed_sites)  # fmt: skip


COLLAPSE_SHARE = 0.02  # an MLP keeping less than this share of its neurons has collapsed


def collapsed(
    original: Mapping[str, int], widths: Mapping[str, int], round_to: int = 1
) -> list[str]:
    """The MLPs pruning emptied: those keeping under :data:`COLLAPSE_SHARE` of their
    neurons, or fewer than ``2 * round_to`` (a global ranking can do that to the layers
    whose activations vary least, e.g. ConvNeXt's first stages)."""
    floor = {name: max(COLLAPSE_SHARE * width, 2 * round_to) for name, width in original.items()}
    return [name for name, width in widths.items() if width < min(original[name], floor[name])]


def _warn_collapse(
    names: list[str], original: Mapping[str, int], widths: Mapping[str, int]
) -> None:
    import warnings

    shown = ", ".join(f"{name} {widths[name]} of {original[name]}" for name in names[:4])
    more = f" and {len(names) - 4} more" if len(names) > 4 else ""
    warnings.warn(
        f"{len(names)} MLP(s) keep almost none of their neurons ({shown}{more}): the global "
        "ranking emptied them; keep more with min_keep (--min-keep) or rank within each MLP "
        "with scope='layer' (--scope layer)",
        stacklevel=3,
    )
