"""Which neurons to remove: statistics + config -> a plain, serialisable plan (torch only).

Selection never touches a model. The plan it returns (the config, and per site the kept
indices and the means to fold) is applied by :func:`vbprune.apply_plan`, can be saved as
JSON and replayed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from .compat import RenamedAttribute
from .config import PruningConfig, resolve_config
from .errors import ConfigError, OptionTypeError, PlanError, StatisticsError
from .statistics import NeuronStats

__all__ = ["PruningPlan", "SitePlan", "plan_pruning", "select_neurons"]


@dataclass
class SitePlan:
    """What happens to one MLP.

    Attributes:
        width: Hidden width before pruning.
        keep: Indices of the kept neurons, ascending.
        fold_mean: Mean activation of each removed neuron, in ascending index order
            (the complement of ``keep``); folded into ``fc2``'s bias.
    """

    width: int
    keep: list[int]
    fold_mean: list[float]

    @property
    def pruned(self) -> list[int]:
        """Indices of the removed neurons, ascending."""
        kept = set(self.keep)
        return [i for i in range(self.width) if i not in kept]


@dataclass
class PruningPlan:
    """The outcome of selection for a whole model: the config and a :class:`SitePlan` per
    site name (model order)."""

    config: PruningConfig
    sites: dict[str, SitePlan] = field(default_factory=dict)

    # vbprune 0.1's names: the options stood on the plan itself
    hidden_sizes = RenamedAttribute("widths")
    ratio = RenamedAttribute("config.ratio")
    scope = RenamedAttribute("config.scope")
    min_keep = RenamedAttribute("config.min_keep")
    round_to = RenamedAttribute("config.round_to")

    def __post_init__(self) -> None:
        if not isinstance(self.config, PruningConfig):
            raise OptionTypeError(
                f"PruningPlan takes a PruningConfig first, got {type(self.config).__name__}"
            )

    @property
    def widths(self) -> dict[str, int]:
        """Width per site after pruning."""
        return {name: len(site.keep) for name, site in self.sites.items()}

    @property
    def num_pruned(self) -> int:
        """Total number of neurons removed."""
        return sum(site.width - len(site.keep) for site in self.sites.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps(plan.to_dict())``)."""
        sites = {name: asdict(site) for name, site in self.sites.items()}
        return {"config": self.config.to_dict(), "sites": sites}

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
            config = data.pop("config", data)  # 0.1: the options at the top level
            return cls(PruningConfig.from_dict(config), sites)
        except (KeyError, TypeError, AttributeError, ConfigError, OptionTypeError) as error:
            raise PlanError(f"not a pruning plan: {type(error).__name__}: {error}") from error


# criteria whose scores come from the model, and the function that computes them
_SCORED = {"magnitude": "vbprune.magnitude_scores", "obs": "vbprune.obs_scores"}


def _floor_count(ratio: float, n: int) -> int:
    """``floor(ratio * n)``, forgiving float error: 0.29 * 100 is 28.999999999999996."""
    product = float(ratio) * n
    nearest = round(product)
    return nearest if abs(product - nearest) < 1e-9 * max(1, n) else math.floor(product)


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
    config = PruningConfig(ratio, scope, min_keep, round_to)
    return _select(variances, config)


def _select(variances: Mapping[str, Tensor], config: PruningConfig) -> dict[str, Tensor]:
    ratio, min_keep = config.ratio, config.min_keep
    names = list(variances)
    var = [variances[n].detach().double().cpu().reshape(-1) for n in names]
    widths = [v.numel() for v in var]
    for name, width in zip(names, widths):
        if width < min_keep:
            raise ConfigError(f"site {name} has {width} neurons, fewer than min_keep={min_keep}")
    if config.scope == "global":
        removed = _global_removal_counts(var, widths, ratio, min_keep)
    else:
        removed = [_floor_count(ratio, w) for w in widths]
        for name, width, r in zip(names, widths, removed):
            if width - r < min_keep:
                raise ConfigError(
                    f"ratio {ratio} would leave {width - r} neurons in {name}, "
                    f"fewer than min_keep={min_keep}"
                )
    kept = [w - r for w, r in zip(widths, removed)]
    if config.round_to > 1:
        kept = _round_widths(kept, widths, config.round_to, min_keep)
    keep = {}
    for name, v, k in zip(names, var, kept):
        order = torch.argsort(v, stable=True)  # ascending variance, ties by index
        keep[name] = order[v.numel() - k :].sort().values
    return keep


def _global_removal_counts(
    var: list[Tensor], widths: list[int], ratio: float, min_keep: int
) -> list[int]:
    total = sum(widths)
    n_remove = _floor_count(ratio, total)
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


def _round_widths(kept: list[int], widths: list[int], multiple: int, min_keep: int) -> list[int]:
    """Per site, the multiple of ``multiple`` just below or above its target (or its full
    width), chosen so that the total is nearest to ``sum(kept)`` (ties: keep more)."""
    floor_min = [min(w, multiple * math.ceil(min_keep / multiple)) for w in widths]
    down = [max(min(multiple * (k // multiple), w), m) for k, w, m in zip(kept, widths, floor_min)]
    up = [max(min(multiple * math.ceil(k / multiple), w), d) for k, w, d in zip(kept, widths, down)]
    # Sites nearest to their next multiple go up first: process them first, and when
    # tracing back let the later ones stay down whenever the total allows it.
    order = sorted(range(len(kept)), key=lambda s: -(kept[s] - down[s]))
    # reachable[i]: bitset of extra totals (over sum(down)) reachable by order[:i] sites.
    reachable = [1]
    for site in order:
        bits = reachable[-1]
        reachable.append(bits | (bits << (up[site] - down[site])))
    wanted = sum(kept) - sum(down)
    totals = [t for t in range(reachable[-1].bit_length()) if reachable[-1] >> t & 1]
    extra = min(totals, key=lambda t: (abs(t - wanted), -t))
    result = list(down)
    for index in range(len(order) - 1, -1, -1):
        site = order[index]
        if not (reachable[index] >> extra & 1):  # must go up to reach this total
            result[site] = up[site]
            extra -= up[site] - down[site]
    return result


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
        criterion: ``"variance"`` (the method), ``"random"`` (the ablation baseline:
            the same counts, neurons drawn at random with ``seed``), ``"magnitude"``
            (weight magnitude, from ``scores``; see :func:`vbprune.magnitude_scores`) or
            ``"obs"`` (the greedy least-squares error, from ``scores``; see
            :func:`vbprune.obs_scores`).
        seed: Seed of the ``"random"`` criterion.
        scores: Per-site scores (lowest removed first) for the ``"magnitude"`` and
            ``"obs"`` criteria.
        config: All options at once.

    Returns:
        A :class:`PruningPlan` that :func:`vbprune.apply_plan` applies.

    Raises:
        ConfigError: a bad option (a ``ValueError``).
        StatisticsError: statistics that are malformed, too few or not finite.
    """
    config = resolve_config(
        config, ratio=ratio, scope=scope, min_keep=min_keep, round_to=round_to,
        criterion=criterion, seed=seed,
    )  # fmt: skip
    for name, s in stats.items():
        if s.mean.dim() != 1 or s.m2.shape != s.mean.shape:
            raise StatisticsError(
                f"statistics of {name} are malformed: mean {tuple(s.mean.shape)}, "
                f"m2 {tuple(s.m2.shape)}"
            )
        if s.count < 2:
            raise StatisticsError(f"statistics of {name} hold {s.count} sample(s); need at least 2")
        if not s.is_finite():
            raise StatisticsError(f"statistics of {name} hold NaN or infinite values")
    if config.criterion in _SCORED:
        if scores is None:
            raise ConfigError(
                f"the {config.criterion} criterion needs scores ({_SCORED[config.criterion]})"
            )
    elif config.criterion == "variance":
        scores = {n: s.var for n, s in stats.items()}
    else:
        generator = torch.Generator().manual_seed(config.seed)
        scores = {n: torch.rand(s.mean.numel(), generator=generator) for n, s in stats.items()}
    keep = _select(scores, config)
    plan = PruningPlan(config)
    for name, s in stats.items():
        width = s.mean.numel()
        mask = torch.ones(width, dtype=torch.bool)
        mask[keep[name]] = False
        plan.sites[name] = SitePlan(width, keep[name].tolist(), s.mean.cpu()[mask].tolist())
    return plan
