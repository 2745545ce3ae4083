"""The steps :func:`vbprune.prune_model` and :func:`vbprune.apply_plan` share: the sites
of a model, their units with checked statistics, and the application of a plan
(compensation computed for every site first, then the surgery)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..architectures import (
    AttentionSite,
    MLPSite,
    find_attention_sites,
    find_mlp_sites,
    model_backend,
)
from ..architectures.widths import attention_records, mlp_records
from ..core.compensation import COMPENSATIONS
from ..core.config import PruningConfig
from ..core.least_squares import lost_output_variance
from ..core.selection import PruningPlan
from ..core.statistics import NeuronStats
from ..core.units import Correction, Removal, SiteUnits
from ..core.validation import check_statistics

Site = MLPSite | AttentionSite


PROGRESS_DELAY = 2.0  # seconds before a bar of the per-MLP work appears


def progress(description: str, total: int):
    """A progress bar over the sites that appears only on a terminal and only when the
    loop takes more than two seconds (OBS scores and least squares of large MLPs)."""

    def bar(items):
        from tqdm.auto import tqdm

        return tqdm(items, desc=description, total=total, unit="site", delay=PROGRESS_DELAY,
                    leave=False, disable=None)  # fmt: skip

    return bar


def covariance_need(config: PruningConfig, *options: str) -> str | None:
    """``'compensate="ls"'``: which of ``options`` (default: any) needs the covariance."""
    need = config.covariance_need(*options)
    return need and f'{need}="{getattr(config, need)}"'


def site_units(
    sites: list[Site],
    stats: Mapping[str, NeuronStats] | None,
    covariance: str | None,
    required: bool = False,
    others: Iterable[str] = (),
) -> dict[str, SiteUnits]:
    """Every site's units with its statistics, checked. Without statistics (allowed unless
    ``required`` or the covariance is needed) the units carry none: a criterion or
    compensation that reads them raises then. Statistics of the sites named in
    ``others`` (attention sites when heads are not pruned) are ignored silently."""
    if stats is None and covariance is None and not required:
        return {site.name: site.units() for site in sites}
    widths = {site.name: site.width for site in sites}
    attention = [s.name for s in sites if s.kind == "attention"]
    if stats is not None and attention and attention[0] not in stats:
        from ..core.errors import StatisticsError

        raise StatisticsError(
            f"the statistics have no entry for attention site {attention[0]!r}: calibrate "
            "with VarianceCalibrator(model, heads=True) (or `vbprune calibrate --heads`)"
        )
    skip = set(others)
    if stats is not None and skip:
        stats = {name: entry for name, entry in stats.items() if name not in skip}
    checked = check_statistics(stats, widths, covariance)
    return {site.name: site.units(checked[site.name]) for site in sites}


def model_sites(model: nn.Module, heads: bool) -> tuple[list[Site], list[str]]:
    """The MLP sites, and the attention sites when ``heads`` (else their names: statistics
    of them are expected, not warned of)."""
    sites: list[Site] = list(find_mlp_sites(model))
    if heads:
        return [*sites, *find_attention_sites(model)], []
    from ..architectures.finder import find_attention_sites_and_problems

    return sites, [site.name for site in find_attention_sites_and_problems(model)[0]]


def apply_checked(
    model: nn.Module,
    sites: list[Site],
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
        for site in progress(f"compensating ({mode})", len(sites))(sites):
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
        heads, layout = attention_records(model, sites)
        if heads:
            model.config.attention_heads, model.config.attention_layout = heads, layout


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


def pruned_copy(
    model: nn.Module,
    sites: list[Site],
    plan: PruningPlan,
    mode: str,
    units: Mapping[str, SiteUnits],
) -> nn.Module:
    """A copy of ``model`` with ``plan`` applied (``mode``: its compensation), to try a
    plan out (its logits, its latency) while ``model`` stays whole."""
    import copy

    trial = copy.deepcopy(model)
    heads = any(site.kind == "attention" for site in sites)
    found = {site.name: site for site in model_sites(trial, heads)[0]}
    apply_checked(trial, [found[site.name] for site in sites], plan, mode, units)
    return trial
