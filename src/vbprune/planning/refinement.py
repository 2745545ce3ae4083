"""Latency plans checked on the device: a plan's pruned copy timed against the dense
model in turns, and the target given to the latency table corrected until the measured
share meets the budget (:func:`refine_to_latency`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor, nn

from ..architectures.timing import time_in_turns, timing_batch
from ..core.errors import ConfigError
from ..core.selection import PruningPlan
from ..core.units import SiteUnits
from .latency import LatencyTable
from .steps import Site, pruned_copy

TOLERANCE = 0.02  # a measured share within 2 % of the target ends the refinement
REFINE_STEPS = 4  # plans timed at most (the first included)


def measured_share(
    model: nn.Module,
    sites: list[Site],
    units: Mapping[str, SiteUnits],
    plan: PruningPlan,
    batch: Tensor,
    repeats: int = 15,
) -> float:
    """The latency of ``model`` pruned by ``plan`` (a copy, shapes only: no compensation)
    as a share of ``model``'s, both timed in turns."""
    trial = pruned_copy(model, sites, plan, "none", units)
    calls = {"dense": lambda: model(batch), "pruned": lambda: trial(batch)}
    training = model.training
    model.eval()
    trial.eval()
    try:
        seconds = time_in_turns(calls, batch.device, repeats, max_seconds=20.0)
    finally:
        model.train(training)
    return seconds["pruned"] / seconds["dense"]


def refine_to_latency(
    model: nn.Module,
    sites: list[Site],
    units: Mapping[str, SiteUnits],
    plan_for: Callable[[float], PruningPlan],
    share: float,
    table: LatencyTable,
    steps: int = REFINE_STEPS,
) -> PruningPlan:
    """The plan whose pruned copy's measured latency best meets ``share`` of the dense
    model's, among at most ``steps`` plans timed.

    ``plan_for(seconds)`` makes the plan the table predicts at ``seconds``. The first
    asks the target itself; the next corrects it by how much of the predicted saving was
    measured (``1 - measured`` over ``1 - predicted``), and once plans on both sides of
    the target were measured, the goal is interpolated between the closest two. It stops
    when a measured share is within :data:`TOLERANCE` of ``share``, or when a goal gives
    a plan timed already. Kept: the plan closest to the target among those at least as
    fast as asked (within the tolerance), else the fastest. The plan's budget records
    each step.
    """
    batch = timing_batch(model, table.batch_size)
    goal, history = share * table.dense, []
    tried: dict[tuple, tuple[PruningPlan, float]] = {}  # kept widths -> plan, measured
    points: list[tuple[float, float]] = []  # (goal / dense, measured share)
    for _ in range(steps):
        try:
            plan = plan_for(goal)
        except ConfigError:  # a goal below what can be reached: keep what was tried
            break
        shape = tuple(len(entry.keep) for entry in plan.sites.values())
        if shape in tried:  # the correction gave a plan timed already: nothing to learn
            break
        predicted = plan.budget["predicted"]
        measured = measured_share(model, sites, units, plan, batch)
        tried[shape] = (plan, measured)
        points.append((goal / table.dense, measured))
        history.append({"predicted": predicted, "measured": round(measured, 6)})
        if abs(measured / share - 1) <= TOLERANCE or predicted >= 1:
            break
        goal = table.dense * _next_goal(points, share, predicted, measured)
    if not tried:  # the first plan could not be made: its error says why
        return plan_for(share * table.dense)
    fast = [(p, m) for p, m in tried.values() if m <= share * (1 + TOLERANCE)]
    best, measured = (min(fast, key=lambda e: abs(e[1] / share - 1)) if fast
                      else min(tried.values(), key=lambda e: e[1]))  # fmt: skip
    best.budget["steps"] = history
    best.budget["achieved"] = round(measured, 6)
    return best


def _next_goal(points, share, predicted, measured) -> float:
    """The next goal (a share of the table's dense time): between the nearest measured
    points on either side of ``share`` when there are such, else corrected by the share
    of the predicted saving that was measured."""
    above = [p for p in points if p[1] > share]
    below = [p for p in points if p[1] <= share]
    if above and below:
        (g1, m1), (g2, m2) = min(above, key=lambda p: p[1]), max(below, key=lambda p: p[1])
        return g1 + (share - m1) * (g2 - g1) / (m2 - m1)
    found = (1 - measured) / (1 - predicted)  # the share of the predicted saving measured
    if found <= 0:
        return points[-1][0] - (measured - share)
    return 1 - (1 - share) / found
