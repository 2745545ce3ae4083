"""How many units a site keeps: counts of a ratio (:func:`floor_count`), widths rounded
to multiples (:func:`round_widths`), and selection to a budget, units removed by score
per unit of cost until the total fits (torch only). The costs (MACs, parameters per
unit) come from the architecture adapters (:mod:`vbprune.architectures.costs`); this
never touches a model."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from .config import PruningConfig
from .errors import ConfigError
from .units import SiteUnits


def floor_count(ratio: float, n: int) -> int:
    """``floor(ratio * n)``, forgiving float error: 0.29 * 100 is 28.999999999999996."""
    product = float(ratio) * n
    nearest = round(product)
    return nearest if abs(product - nearest) < 1e-9 * max(1, n) else math.floor(product)


def round_widths(kept: list[int], widths: list[int], multiple: int, min_keep: int) -> list[int]:
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


def select_to_budget(
    scores: Mapping[str, Tensor],
    costs: Mapping[str, float],
    total: float,
    target: float,
    min_keep: Mapping[str, int],
    weights: Mapping[str, float] | None = None,
    what: str = "MACs",
) -> dict[str, Tensor]:
    """The units each site keeps so that the total cost is at most ``target``.

    Units are removed in ascending order of ``score * weight / cost`` (the score given up
    per unit of cost saved; ``weights`` scale a kind of site against the others, e.g.
    heads against neurons), over all sites, until the total fits. A site keeps at least
    ``min_keep[site]`` units; a unit that costs nothing is never removed.

    Args:
        scores: ``(U,)`` scores per site (lowest removed first within a site).
        costs: Cost of one unit per site (MACs or parameters).
        total: The model's total cost now.
        target: The total cost allowed.
        min_keep: Units each site keeps at least.
        weights: Score multipliers per site (default 1).
        what: The measure's name, for the error.

    Returns:
        Sorted ``int64`` indices of the kept units per site.

    Raises:
        ConfigError: (a ``ValueError``) when even the most pruning ``min_keep`` allows
            stays above ``target``; it names the reachable minimum.
    """
    names = list(scores)
    keys, owners, costs_of, positions = [], [], [], []
    for index, name in enumerate(names):
        score = scores[name].detach().double().cpu().reshape(-1)
        cost = float(costs[name])
        order = torch.argsort(score, stable=True)  # within a site: lowest score first
        eligible = order[: max(score.numel() - min_keep.get(name, 1), 0)]
        if cost <= 0 or eligible.numel() == 0:
            continue
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        keys.append(score[eligible] * weight / cost)
        owners.append(torch.full((eligible.numel(),), index, dtype=torch.int64))
        costs_of.append(torch.full((eligible.numel(),), cost, dtype=torch.float64))
        positions.append(eligible)
    removed: dict[str, list[int]] = {name: [] for name in names}
    if total > target:
        if not keys:
            raise ConfigError(f"no unit can be removed: {what} stay at {total:.4g}")
        key, owner = torch.cat(keys), torch.cat(owners)
        cost, position = torch.cat(costs_of), torch.cat(positions)
        # a site's units stay in its own order (constant cost per site): a stable sort of
        # the keys keeps ties in site order, then index order
        order = torch.argsort(key, stable=True)
        saved = torch.cumsum(cost[order], 0)
        reached = (total - saved <= target * (1 + 1e-12)).nonzero()
        if reached.numel() == 0:
            floor = total - float(saved[-1])
            raise ConfigError(
                f"the budget {target:.4g} {what} is out of reach: at most the units allowed "
                f"(min_keep) can go, which leaves {floor:.4g} {what}"
            )
        count = int(reached[0]) + 1
        for unit in order[:count].tolist():
            removed[names[int(owner[unit])]].append(int(position[unit]))
    keep = {}
    for name in names:
        mask = torch.ones(scores[name].numel(), dtype=torch.bool)
        mask[removed[name]] = False
        keep[name] = mask.nonzero().squeeze(1)
    return keep


def check_reachable(
    config: PruningConfig,
    units: Mapping[str, SiteUnits],
    per: Mapping[str, float],
    total: float,
    target: float,
    min_keep: Mapping[str, int],
    what: str,
) -> None:
    """Refuse a budget below what removing every removable unit leaves, naming it.

    Raises:
        ConfigError: (a ``ValueError``) naming the reachable minimum as a share of the
            dense total, and ``heads=True`` when heads are not pruned yet.
    """
    floor = total - sum(
        max(units[name].num_units - min_keep[name], 0) * per[name] for name in units
    )  # fmt: skip
    if target >= floor * (1 - 1e-12):
        return
    asked = config.budget[0]
    hint = "" if config.heads else "; heads=True (--heads) also prunes attention heads"
    if asked == "target_latency":  # said as the speedup it is
        raise ConfigError(
            f"a speedup of {1 / config.budget[1]:.3g}x (target_latency={config.budget[1]:.3g}) "
            f"is out of reach: pruning can make the model at most "
            f"{f'{total / floor:.3g}x' if floor > 0 else 'any amount'} faster "
            f"by the latency table (every MLP keeps min_keep={config.min_keep} neurons"
            f"{', every attention one head' if config.heads else ''}){hint}"
        )
    raise ConfigError(
        f"{asked}={config.budget[1]:g} is out of reach: pruning can bring the model down to "
        f"{floor / total:.3f} of its {what} at most (every MLP keeps min_keep="
        f"{config.min_keep} neurons{', every attention one head' if config.heads else ''})"
        f"{hint}"
    )


def round_down(
    keep: Mapping[str, Tensor],
    scores: Mapping[str, Tensor],
    units: Mapping[str, SiteUnits],
    kinds: Mapping[str, str],
    config: PruningConfig,
) -> dict[str, Tensor]:
    """With a budget, round each MLP's kept width down to a multiple of ``round_to`` (not
    below ``min_keep`` rounded up): the budget stays met."""
    multiple = config.round_to
    rounded = {}
    for name, kept in keep.items():
        width = units[name].num_units
        count = kept.numel()
        if kinds[name] != "mlp" or count == width:
            rounded[name] = kept
            continue
        floor = min(width, multiple * math.ceil(config.min_keep / multiple))
        target = max(multiple * (count // multiple), floor)
        order = torch.argsort(scores[name].double(), stable=True)
        rounded[name] = order[width - target :].sort().values
    return rounded
