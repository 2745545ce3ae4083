"""prune_model: score and select neurons, then compensate for them in fc2 and shrink.

The glue of the method: :mod:`vbprune.architectures` finds the MLPs and shows each as
:class:`~vbprune.core.units.SiteUnits`; :mod:`vbprune.core` scores them (a registered
criterion), selects, and computes the registered compensation; the sites apply it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .architectures import MLPSite, find_mlp_sites, model_backend
from .architectures.widths import mlp_records
from .core.compensation import COMPENSATIONS
from .core.config import PruningConfig, compensation, resolve_config
from .core.least_squares import lost_output_variance
from .core.selection import PruningPlan, check_plan, plan_from_scores, score_units
from .core.statistics import NeuronStats
from .core.units import Correction, Removal, SiteUnits
from .core.validation import check_statistics


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
    """

    plan: PruningPlan
    original_widths: dict[str, int]
    widths: dict[str, int]
    approximate_sites: list[str] = field(default_factory=list)
    lost_variance: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def config(self) -> PruningConfig:
        """The options the model was pruned with."""
        return self.plan.config

    @property
    def num_pruned(self) -> int:
        """Total number of hidden neurons removed."""
        return sum(self.original_widths.values()) - sum(self.widths.values())

    def __repr__(self) -> str:  # the dataclass's would print every kept index
        before, after = sum(self.original_widths.values()), sum(self.widths.values())
        config = self.config
        return (
            f"PruningResult({self.num_pruned} of {before} neurons removed from "
            f"{len(self.widths)} MLPs ({before} -> {after}); ratio {config.ratio:g}, "
            f"{config.scope}, criterion {config.criterion}, compensate {config.compensate}"
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
    units = _units(find_mlp_sites(model), stats, _covariance_need(config, "criterion"))
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


PROGRESS_DELAY = 2.0  # seconds before a bar of the per-MLP work appears


def _progress(description: str, total: int):
    """A progress bar over the sites that appears only on a terminal and only when the
    loop takes more than two seconds (OBS scores and least squares of large MLPs)."""

    def bar(items):
        from tqdm.auto import tqdm

        return tqdm(items, desc=description, total=total, unit="MLP", delay=PROGRESS_DELAY,
                    leave=False, disable=None)  # fmt: skip

    return bar


def _covariance_need(config: PruningConfig, *options: str) -> str | None:
    """``'compensate="ls"'``: which of ``options`` (default: any) needs the covariance."""
    need = config.covariance_need(*options)
    return need and f'{need}="{getattr(config, need)}"'


def _units(
    sites: list[MLPSite],
    stats: Mapping[str, NeuronStats] | None,
    covariance: str | None,
    required: bool = False,
) -> dict[str, SiteUnits]:
    """Every site's units with its statistics, checked. Without statistics (allowed unless
    ``required`` or the covariance is needed) the units carry none: a criterion or
    compensation that reads them raises then."""
    if stats is None and covariance is None and not required:
        return {site.name: site.units() for site in sites}
    widths = {site.name: site.width for site in sites}
    checked = check_statistics(stats, widths, covariance)
    return {site.name: site.units(checked[site.name]) for site in sites}


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
    sites = find_mlp_sites(model)
    check_plan(plan, {site.name: site.width for site in sites})
    mode = compensation(compensate, default=plan.config.compensate)
    config = dataclasses.replace(plan.config, compensate=mode)
    _apply(model, sites, plan, mode, _units(sites, stats, _covariance_need(config, "compensate")))
    return {site.name: site.width for site in sites}


def _apply(
    model: nn.Module,
    sites: list[MLPSite],
    plan: PruningPlan,
    mode: str,
    units: Mapping[str, SiteUnits],
    lost: dict[str, dict[str, float]] | None = None,
) -> None:
    """The surgery of a checked plan. Every site's correction is computed first, so a
    compensation that fails leaves the model as it was; then fc2s are corrected and the
    sites shrunk. Fills ``lost`` (the report's diagnostics: the share of each fc2's
    output variance lost with the mean fold and with ``mode``'s weight change) when
    given and the statistics hold covariances."""
    compensate = COMPENSATIONS[mode].function
    corrections: dict[str, tuple[Removal, Correction]] = {}
    with torch.no_grad():
        for site in _progress(f"compensating ({mode})", len(sites))(sites):
            entry = plan.sites[site.name]
            if len(entry.keep) == entry.width:
                continue
            removal = Removal(
                torch.tensor(entry.keep, dtype=torch.int64),
                torch.tensor(entry.pruned, dtype=torch.int64),
                torch.tensor(entry.fold_mean, dtype=torch.float64),
            )
            correction = compensate(units[site.name], removal)
            corrections[site.name] = (removal, correction)
            if lost is not None:
                _diagnose(units[site.name], removal, mode, correction, lost)
        for site in sites:
            if site.name in corrections:
                removal, correction = corrections[site.name]
                site.correct(correction, removal.keep)
                site.shrink(removal.keep)
    if model_backend(model) == "transformers":
        # the config describes the pruned model (save_pretrained writes it; the pruned
        # class of vbprune.hf_remote rebuilds the model from it)
        model.config.mlp_widths, model.config.mlp_layout = mlp_records(model)


def _diagnose(
    units: SiteUnits,
    removal: Removal,
    mode: str,
    correction: Correction,
    lost: dict[str, dict[str, float]],
) -> None:
    """``lost[site]``: the share of fc2's output variance the removal loses with the mean
    fold, and with ``mode`` when it changes fc2's weights (needs the covariance)."""
    if units.stats is None or units.stats.c2 is None:
        return
    w2, keep, pruned = units.fc2_weight, removal.keep, removal.pruned
    cov = units.stats.cov.to(w2.device)
    lost[units.name] = {"mean": round(lost_output_variance(w2, keep, pruned, cov), 6)}
    if correction.weight is not None:
        lost[units.name][mode] = round(
            lost_output_variance(w2, keep, pruned, cov, correction.weight), 6
        )


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
    units = _units(sites, stats, _covariance_need(config), required=True)  # before any work
    scores = score_units(units, config, _progress(f"scoring ({config.criterion})", len(units)))
    plan = plan_from_scores(units, scores, config)
    original = {site.name: site.width for site in sites}
    approximate = [site.name for site in sites if not site.exact]
    lost: dict[str, dict[str, float]] = {}
    _apply(model, sites, plan, config.compensate, units, lost if diagnose else None)
    widths = {site.name: site.width for site in sites}
    return PruningResult(plan, original, widths, approximate, lost)
