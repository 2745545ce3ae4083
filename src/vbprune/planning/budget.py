"""Plans for a budget (a share of the MACs or parameters kept) and for heads.

Units (MLP neurons, heads) of least score per unit of cost saved go first
(:func:`vbprune.core.budget.select_to_budget`, with the costs of
:mod:`vbprune.architectures.costs`). With heads, the weight of heads' scores against
neurons' is chosen by the KL divergence of the pruned model's logits from the dense
model's on calibration images: each candidate plan is applied to a copy (forward passes
only), MLP-only pruning to the same budget among them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures.costs import unit_costs
from ..architectures.interface import logits_of
from ..core.budget import check_reachable, round_down, select_to_budget
from ..core.config import DEFAULT_HEAD_WEIGHT, HEAD_WEIGHTS, PruningConfig
from ..core.errors import ConfigError, OptionTypeError
from ..core.selection import PruningPlan, plan_from_keep, select_units
from ..core.units import SiteUnits
from .latency import LatencyTable, latency_table, matches
from .refinement import refine_to_latency
from .steps import Site, progress, pruned_copy


def _terms(model: nn.Module, sites: list[Site], config: PruningConfig, table=None):
    """``(measure, its name, cost per unit by site, the model's total, min_keep by
    site, reserve)`` of the budget ``config`` states (a latency budget's from ``table``).

    With ``round_to`` an MLP keeps at least ``min_keep`` rounded up to a multiple (the
    widths are rounded down afterwards, never below it). ``reserve`` is what the
    pruning may add: the output bias the fold creates in a bias-free fc2 or projection
    (parameters only), taken off the target so the budget stays met."""
    floor = config.round_to * math.ceil(config.min_keep / config.round_to)
    min_keep = {
        site.name: min(site.width, floor) if site.kind == "mlp" else 1 for site in sites
    }  # fmt: skip
    if config.target_latency is not None:
        _check_table(table, model, sites, config.latency_batch)
        return "latency", "measured latency", table.per_unit(), table.dense, min_keep, 0.0
    costs = unit_costs(model, sites)
    measure = "params" if config.target_params is not None else "macs"
    what = "parameters" if measure == "params" else "MACs"
    reserve = 0.0
    if measure == "params" and config.compensate != "none":
        reserve = float(sum(
            site.fc2.weight.shape[0] for site in sites
            if site.fc2.bias is None and getattr(site, "fc2_norm", None) is None
        ))  # fmt: skip
    return measure, what, costs[measure], float(costs["total"][measure]), min_keep, reserve


def _check_table(
    table: LatencyTable, model: nn.Module, sites: list[Site], batch: int | None
) -> None:
    """Refuse a latency table of another model (a site missing or of another width), of
    another device, or of another batch size than ``latency_batch`` asks."""
    if batch is not None and batch != table.batch_size:
        raise ConfigError(
            f"the latency table was measured at batch {table.batch_size}, the config asks "
            f"latency_batch={batch}: make it with vbprune.latency_table(model, batch_size="
            f"{batch})"
        )
    wrong = matches(table, sites, next(model.parameters()).device)
    if wrong:
        raise ConfigError(
            f"the latency table is not this model's: {wrong}; make it for this model with "
            "vbprune.latency_table(model)"
        )


def _table(model: nn.Module, sites: list[Site], config: PruningConfig, table):
    """The latency table of a latency budget (measured now, or cached, when not given)."""
    if config.target_latency is None or table is not None:
        return table
    return latency_table(model, sites, batch_size=config.latency_batch or 1)


def check_budget(
    model: nn.Module, sites: list[Site], config: PruningConfig, table: LatencyTable | None = None
) -> None:
    """Refuse a budget out of reach before any statistics are collected (the costs need
    one counted forward, or the latency ``table``, no data); a ratio passes.

    Raises:
        ConfigError: naming the reachable minimum, as :func:`vbprune.prune_model` would.
    """
    if config.ratio is not None:  # a ratio's target (with heads) depends on the scores
        return
    table = _table(model, sites, config, table)
    _, what, per, total, min_keep, reserve = _terms(model, sites, config, table)
    units = {site.name: site.units() for site in sites}
    target = config.budget[1] * total - reserve
    check_reachable(config, units, per, total, target, min_keep, what)


def budget_plan(
    model: nn.Module,
    sites: list[Site],
    units: Mapping[str, SiteUnits],
    scores: Mapping[str, Tensor],
    config: PruningConfig,
    images: Tensor | Iterable[Any] | None,
    table: LatencyTable | None = None,
) -> PruningPlan:
    """The plan of a budget (or of a ratio with heads): units of least score per unit of
    cost removed until the model fits; with heads, the weight of heads against neurons
    chosen by KL to the dense logits on ``images`` (MLP-only among the candidates). A
    latency budget's plan is then refined until a pruned copy's measured latency meets
    it (:func:`~vbprune.planning.refinement.refine_to_latency`)."""
    table = _table(model, sites, config, table)
    measure, what, per, total, min_keep, reserve = _terms(model, sites, config, table)
    mlp = [site.name for site in sites if site.kind == "mlp"]
    kinds = {site.name: site.kind for site in sites}
    if config.ratio is not None:  # with heads: the MACs MLP-only pruning at this ratio saves
        keep = select_units({name: scores[name] for name in mlp}, config)
        saved = sum((units[n].num_units - keep[n].numel()) * per[n] for n in mlp)
        target = total - saved
    else:
        target = config.budget[1] * total - reserve
    check_reachable(config, units, per, total, target, min_keep, what)

    def plan_for(weight: float | None, target: float = target) -> PruningPlan:
        chosen = mlp if weight is None else list(units)
        keep = select_to_budget(
            {name: scores[name] for name in chosen}, per, total, target, min_keep,
            {name: weight for name in chosen if kinds[name] == "attention"}, what,
        )  # fmt: skip
        for name in units:
            keep.setdefault(name, torch.arange(units[name].num_units))
        if config.round_to > 1:
            keep = round_down(keep, scores, units, kinds, config)
        plan = plan_from_keep(units, {name: keep[name] for name in units}, config, kinds)
        predicted = total - sum(
            (units[n].num_units - keep[n].numel()) * per[n] for n in units
        )  # fmt: skip
        plan.budget = {
            "measure": measure, "asked": config.budget[1] if config.ratio is None else None,
            "target": round(config.budget[1] if measure == "latency" else target / total, 6),
            "dense": total,
            "predicted": round(predicted / total, 6),
            "head_weight": weight if config.heads else None,
        }  # fmt: skip
        return plan

    if not config.heads:
        chosen = plan_for(None)
    elif config.head_weight is not None:
        chosen = plan_for(config.head_weight)
    elif images is None:
        chosen = plan_for(DEFAULT_HEAD_WEIGHT)
    else:
        candidates = [plan_for(weight) for weight in HEAD_WEIGHTS]
        with contextlib.suppress(ConfigError):  # out of reach without heads: no candidate
            candidates.append(plan_for(None))  # MLP-only: the result is never further
        chosen = _closest_to_dense(model, sites, units, candidates, config.compensate, images)
    if measure != "latency":
        return chosen
    # the weight chosen at the predicted target, refined on measured latency
    weight = chosen.budget["head_weight"] if config.heads else None
    refined = refine_to_latency(model, sites, units, lambda goal: plan_for(weight, goal),
                                config.target_latency, table)  # fmt: skip
    refined.budget.update(
        {k: v for k, v in chosen.budget.items() if k == "kl"},
        device=table.device,
        batch_size=table.batch_size,
    )
    return refined


def _as_batches(images: Tensor | Iterable[Any]) -> list[Tensor]:
    if isinstance(images, Tensor):
        return list(images.split(64))
    batches = []
    for batch in images:
        if isinstance(batch, Mapping):
            batch = batch["pixel_values"]
        elif isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise OptionTypeError(f"images must hold tensors, got {type(batch).__name__}")
        batches.append(batch)
    return batches


def _logits(model: nn.Module, batches: list[Tensor]) -> Tensor:
    param = next(model.parameters())
    with torch.no_grad():
        return torch.cat([
            logits_of(model(b.to(param.device, param.dtype))).float().cpu() for b in batches
        ])  # fmt: skip


def _closest_to_dense(
    model: nn.Module,
    sites: list[Site],
    units: Mapping[str, SiteUnits],
    candidates: list[PruningPlan],
    mode: str,
    images: Tensor | Iterable[Any],
) -> PruningPlan:
    """The candidate plan whose pruned model's logits on ``images`` have the lowest mean
    KL divergence from the dense model's (each applied to a copy; forward passes only)."""
    batches = _as_batches(images)
    training = model.training
    model.eval()
    dense = _logits(model, batches).log_softmax(-1)
    results = []
    for plan in progress("trying heads against neurons", len(candidates))(candidates):
        trial = pruned_copy(model, sites, plan, mode, units)
        pruned = _logits(trial, batches).log_softmax(-1)
        kl = float(torch.nn.functional.kl_div(pruned, dense, log_target=True,
                                              reduction="batchmean"))  # fmt: skip
        results.append(kl)
        del trial
    model.train(training)
    best = min(range(len(candidates)), key=results.__getitem__)
    chosen = candidates[best]
    chosen.budget["kl"] = {
        ("mlp_only" if plan.budget["head_weight"] is None else f"{plan.budget['head_weight']:g}"):
        round(kl, 6) for plan, kl in zip(candidates, results)
    }  # fmt: skip
    return chosen


def record_achieved(model: nn.Module, budget: dict[str, Any]) -> None:
    """The MACs or parameters the pruned model really has (counted), as a share of the
    dense one (a latency budget's share was measured while refining its plan)."""
    if budget["measure"] == "params":
        now = sum(p.numel() for p in model.parameters())
    else:
        from ..architectures.costs import module_macs

        now = module_macs(model)[0]
    budget["achieved"] = round(now / budget["dense"], 6)
