"""Which neurons to remove: statistics + config -> a plain, serialisable plan (torch only).

Selection never touches a model. A criterion (:mod:`.criteria`) scores the units of each
site; the lowest are removed, ranked over all sites or per site. The plan it returns
(the config, and per site the kept indices and the means to fold) is applied by
:func:`vbprune.apply_plan`, can be saved as JSON and replayed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from .budget import floor_count, round_widths
from .config import PruningConfig, resolve_config
from .criteria import CRITERIA
from .errors import ConfigError, OptionTypeError, PlanError
from .statistics import NeuronStats
from .units import SiteUnits
from .validation import check_statistics

__all__ = [
    "PruningPlan",
    "SitePlan",
    "plan_pruning",
    "score_units",
    "select_neurons",
]


@dataclass
class SitePlan:
    """What happens to one site: an MLP, or an attention module (its heads).

    Attributes:
        width: Channels before pruning (an MLP's hidden neurons; an attention's
            ``heads * head_dim``).
        keep: Indices of the kept channels, ascending (whole heads for an attention).
        fold_mean: Mean activation of each removed channel, in ascending index order
            (the complement of ``keep``); folded into ``fc2``'s (the projection's) bias.
        unit_size: Channels per unit: 1 for an MLP neuron, ``head_dim`` for a head.
        kind: ``"mlp"`` or ``"attention"``.
    """

    width: int
    keep: list[int]
    fold_mean: list[float]
    unit_size: int = 1
    kind: str = "mlp"

    @property
    def pruned(self) -> list[int]:
        """Indices of the removed neurons, ascending."""
        kept = set(self.keep)
        return [i for i in range(self.width) if i not in kept]


@dataclass
class PruningPlan:
    """The outcome of selection for a whole model: the config, a :class:`SitePlan` per
    site name (model order) and, for a budget, what was asked and predicted
    (``budget``: measure, asked, target, predicted, head_weight; and after
    :func:`vbprune.prune_model` the achieved share, counted)."""

    config: PruningConfig
    sites: dict[str, SitePlan] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.config, PruningConfig):
            raise OptionTypeError(
                f"PruningPlan takes a PruningConfig first, got {type(self.config).__name__}"
            )

    @property
    def widths(self) -> dict[str, int]:
        """Hidden width per MLP after pruning."""
        return {name: len(site.keep) for name, site in self.sites.items() if site.kind == "mlp"}

    @property
    def heads(self) -> dict[str, int]:
        """Heads per attention site after pruning (empty without heads)."""
        return {
            name: len(site.keep) // site.unit_size
            for name, site in self.sites.items()
            if site.kind == "attention"
        }

    @property
    def num_pruned(self) -> int:
        """Total number of MLP neurons removed."""
        return sum(
            site.width - len(site.keep) for site in self.sites.values() if site.kind == "mlp"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps(plan.to_dict())``)."""
        sites = {name: asdict(site) for name, site in self.sites.items()}
        data = {"config": self.config.to_dict(), "sites": sites}
        if self.budget:
            data["budget"] = dict(self.budget)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningPlan:
        """Inverse of :meth:`to_dict`; also reads plans of vbprune 0.1, whose options
        (ratio, scope, min_keep, round_to) stood beside ``sites``.

        Raises:
            PlanError: (a ``ValueError``) for a dict that is not a plan.
        """
        data = dict(data)
        try:
            sites = {name: SitePlan(**site) for name, site in data.pop("sites").items()}
            budget = dict(data.pop("budget", {}))
            config = data.pop("config", data)  # 0.1: the options at the top level
            return cls(PruningConfig.from_dict(config), sites, budget)
        except (KeyError, TypeError, AttributeError, ConfigError, OptionTypeError) as error:
            raise PlanError(f"not a pruning plan: {type(error).__name__}: {error}") from error


def check_plan(plan: PruningPlan, widths: Mapping[str, int]) -> None:
    """Refuse a plan that does not fit sites of these ``widths``.

    Raises:
        PlanError: (a ``ValueError``) naming the site: missing or extra, another width,
            kept indices not increasing or out of range, none kept, or a ``fold_mean``
            without one finite value per removed neuron.
    """
    extra = sorted(set(plan.sites) - set(widths))
    if extra:
        raise PlanError(f"plan does not fit the model: it has no MLP {extra[0]!r}")
    for name, width in widths.items():
        entry = plan.sites.get(name)
        if entry is None or entry.width != width:
            found = "missing" if entry is None else f"width {entry.width}"
            raise PlanError(
                f"plan does not fit the model: {name} has width {width}, plan entry {found}"
            )
        keep = entry.keep
        if not all(isinstance(i, int) for i in keep) or any(
            a >= b for a, b in itertools.pairwise(keep)
        ):
            raise PlanError(f"plan entry of {name}: keep must be increasing integers")
        if keep and (keep[0] < 0 or keep[-1] >= entry.width):
            raise PlanError(f"plan entry of {name}: keep indices outside [0, {entry.width})")
        if not keep:
            raise PlanError(f"plan entry of {name} keeps no neuron")
        size = entry.unit_size
        if size > 1 and (
            len(keep) % size
            or any(keep[i] % size or keep[i + size - 1] != keep[i] + size - 1
                   for i in range(0, len(keep), size))
        ):  # fmt: skip
            raise PlanError(f"plan entry of {name}: keep must hold whole heads of {size}")
        if len(entry.fold_mean) != entry.width - len(keep) or not all(
            math.isfinite(m) for m in entry.fold_mean
        ):
            raise PlanError(
                f"plan entry of {name}: fold_mean must hold one finite value per removed neuron"
            )


def select_neurons(
    variances: Mapping[str, Tensor],
    ratio: float,
    scope: str = "global",
    min_keep: int = 1,
    round_to: int = 1,
) -> dict[str, Tensor]:
    """Choose the neurons to keep, lowest variance removed first.

    ``global`` pools all neurons and removes the ``floor(ratio * total)`` of lowest raw
    variance (no per-layer normalisation); ``layer`` removes ``floor(ratio * width)`` per
    site. Ties are broken by (site order, neuron index), so the result is deterministic.
    With ``round_to=N`` every kept width is a multiple of N (or the full width), chosen
    so that the total kept is as close as possible to the unrounded target; the sites
    whose target was nearest to the next multiple round up first.

    Args:
        variances: ``(H,)`` variance per neuron, by site name, in model order.
        ratio: Fraction of neurons to remove, in [0, 1).
        scope: ``"global"`` or ``"layer"``.
        min_keep: No site keeps fewer neurons than this.
        round_to: Kept widths are multiples of this.

    Returns:
        Sorted ``int64`` indices of the kept neurons per site.

    Raises:
        ConfigError: (a ``ValueError``) on a bad option, or when ``min_keep`` makes the
            ratio unreachable.
    """
    config = resolve_config(ratio=ratio, scope=scope, min_keep=min_keep, round_to=round_to)
    return select_units(variances, config)


def select_units(scores: Mapping[str, Tensor], config: PruningConfig) -> dict[str, Tensor]:
    """The units each site keeps: the lowest ``scores`` removed, as ``config`` says
    (ratio, scope, min_keep, round_to; see :func:`select_neurons`).

    Returns:
        Sorted ``int64`` indices of the kept units per site.
    """
    ratio, min_keep = config.ratio, config.min_keep
    names = list(scores)
    var = [scores[n].detach().double().cpu().reshape(-1) for n in names]
    widths = [v.numel() for v in var]
    for name, width in zip(names, widths):
        if width < min_keep:
            raise ConfigError(f"site {name} has {width} neurons, fewer than min_keep={min_keep}")
    if config.scope == "global":
        removed = _global_removal_counts(var, widths, ratio, min_keep)
    else:
        removed = [floor_count(ratio, w) for w in widths]
        for name, width, r in zip(names, widths, removed):
            if width - r < min_keep:
                raise ConfigError(
                    f"ratio {ratio} would leave {width - r} neurons in {name}, "
                    f"fewer than min_keep={min_keep}"
                )
    kept = [w - r for w, r in zip(widths, removed)]
    if config.round_to > 1:
        kept = round_widths(kept, widths, config.round_to, min_keep)
    keep = {}
    for name, v, k in zip(names, var, kept):
        order = torch.argsort(v, stable=True)  # ascending variance, ties by index
        keep[name] = order[v.numel() - k :].sort().values
    return keep


def _global_removal_counts(
    var: list[Tensor], widths: list[int], ratio: float, min_keep: int
) -> list[int]:
    total = sum(widths)
    n_remove = floor_count(ratio, total)
    pooled = torch.cat(var)  # (total,) in (site, index) order
    order = torch.argsort(pooled, stable=True)  # ties: earlier site, then lower index
    site_of = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))[order]
    # A neuron may go only while its site still keeps min_keep: within a site the global
    # order is the site's own order, so the first (width - min_keep) of it are eligible.
    eligible = torch.zeros(total, dtype=torch.bool)
    for site, width in enumerate(widths):
        positions = (site_of == site).nonzero().squeeze(1)
        eligible[positions[: width - min_keep]] = True
    chosen = site_of[eligible][:n_remove]
    if chosen.numel() < n_remove:
        raise ConfigError(
            f"ratio {ratio} removes {n_remove} of {total} neurons, but min_keep={min_keep} "
            f"allows at most {int(eligible.sum())}"
        )
    return torch.bincount(chosen, minlength=len(widths)).tolist()


def score_units(
    units: Mapping[str, SiteUnits],
    config: PruningConfig,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> dict[str, Tensor]:
    """Scores of every site's units by ``config.criterion`` (lowest removed first), on the
    CPU; random criteria draw in site order from one generator seeded with ``config.seed``.
    ``progress`` wraps the loop over the sites (a progress bar).
    """
    criterion = CRITERIA[config.criterion]
    generator = torch.Generator().manual_seed(config.seed)
    scores = {}
    for name, site in progress(units.items()):
        score = criterion.function(dataclasses.replace(site, generator=generator))
        if score.shape != (site.num_units,):
            raise ConfigError(
                f"criterion {config.criterion!r} gave {tuple(score.shape)} scores for {name}, "
                f"which has {site.num_units} units"
            )
        scores[name] = score.detach().cpu()
    return scores


def plan_from_scores(
    units: Mapping[str, SiteUnits], scores: Mapping[str, Tensor], config: PruningConfig
) -> PruningPlan:
    """The plan that removes the lowest-scoring units of every site (checked statistics
    in ``units``, model order): kept channels and the removed channels' means.

    Raises:
        ConfigError: scores missing for a site or of another length.
    """
    for name, site in units.items():
        score = scores.get(name)
        if score is None or score.numel() != site.num_units:
            found = "none" if score is None else f"{score.numel()}"
            raise ConfigError(f"scores of {name}: {found}, the site has {site.num_units} units")
    keep = select_units({name: scores[name] for name in units}, config)
    return plan_from_keep(units, keep, config)


def plan_from_keep(
    units: Mapping[str, SiteUnits],
    keep: Mapping[str, Tensor],
    config: PruningConfig,
    kinds: Mapping[str, str] | None = None,
) -> PruningPlan:
    """The plan that keeps units ``keep`` of every site (checked statistics in
    ``units``): kept channels and the removed channels' means. ``kinds`` says which
    sites are attention sites (default: all MLPs)."""
    plan = PruningPlan(config)
    for name, site in units.items():
        kept = site.channels(keep[name])
        mean = site.moments().mean.cpu()
        mask = torch.ones(mean.numel(), dtype=torch.bool)
        mask[kept] = False
        kind = (kinds or {}).get(name, "mlp")
        plan.sites[name] = SitePlan(mean.numel(), kept.tolist(), mean[mask].tolist(),
                                    site.unit_size, kind)  # fmt: skip
    return plan


def plan_pruning(
    stats: Mapping[str, NeuronStats],
    ratio: float | None = None,
    scope: str | None = None,
    min_keep: int | None = None,
    round_to: int | None = None,
    criterion: str | None = None,
    seed: int | None = None,
    scores: Mapping[str, Tensor] | None = None,
    *,
    config: PruningConfig | None = None,
) -> PruningPlan:
    """Select neurons from calibration statistics and record the means to fold.

    Options come either as one ``config`` or as keywords (unset ones take the
    :class:`~vbprune.PruningConfig` defaults), not both.

    Args:
        stats: Statistics per site (e.g. :class:`~vbprune.ActivationStats`), model order.
        ratio, scope, min_keep, round_to: As in :func:`select_neurons`.
        criterion: A registered criterion (:data:`vbprune.core.criteria.CRITERIA`):
            ``"variance"`` (the method), ``"random"`` (the ablation baseline: the same
            counts, neurons drawn with ``seed``), ``"magnitude"`` or ``"obs"``. Those
            that read the model's weights (magnitude, obs) need ``scores``
            (:func:`vbprune.score_neurons`).
        seed: Seed of random criteria.
        scores: Per-site scores (lowest removed first), instead of the criterion's.
        config: All options at once.

    Returns:
        A :class:`PruningPlan` that :func:`vbprune.apply_plan` applies.

    Raises:
        ConfigError: a bad option (a ``ValueError``), or a criterion that needs the
            model's weights without ``scores``.
        StatisticsError: statistics that are malformed, too few or not finite.
    """
    config = resolve_config(
        config, ratio=ratio, scope=scope, min_keep=min_keep, round_to=round_to,
        criterion=criterion, seed=seed,
    )  # fmt: skip
    if config.ratio is None or config.heads:
        raise ConfigError(
            f"{config.describe()} needs the model (its MACs, parameters and heads): use "
            "vbprune.prune_model(model, stats, config=...)"
        )
    entry = CRITERIA[config.criterion]
    if scores is None and entry.needs_weights:
        raise ConfigError(
            f"the {entry.name} criterion reads the model's weights: use vbprune.prune_model, "
            f"or pass scores=vbprune.score_neurons(model, stats, {entry.name!r})"
        )
    need = f'criterion="{entry.name}"' if scores is None and entry.needs_covariance else None
    units = {name: SiteUnits(name, s) for name, s in check_statistics(stats, None, need).items()}
    if scores is None:
        scores = score_units(units, config)
    return plan_from_scores(units, scores, config)
