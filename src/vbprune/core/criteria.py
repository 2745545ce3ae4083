"""Selection criteria: name -> the function that scores the units of one site.

A criterion takes a :class:`~vbprune.core.units.SiteUnits` (statistics of the channels,
the weights around them, how channels group into units) and returns ``(U,)`` scores,
lowest removed first. Scores are ranked across sites (``scope="global"``), so they must
be comparable between sites. :class:`~vbprune.PruningConfig`, the command line, the sweep,
the demo and model cards read this table; a new criterion is one registered function.

Torch is imported when a criterion runs, not here: ``vbprune --help`` lists the names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

    from .units import SiteUnits

CRITERIA: Registry = Registry("criterion")


@CRITERIA.register(
    "variance",
    label="variance",
    help="the variance of each neuron's activation (the method)",
    card="the lowest-variance neurons",
)
def variance(units: SiteUnits) -> Tensor:
    """Variance of each unit's activation (a group's: the sum over its channels)."""
    return units.per_unit(units.moments().var)


@CRITERIA.register(
    "random",
    label="random",
    help="drawn at random with the seed (the paper's baseline)",
    card="neurons drawn at random (the paper's baseline)",
)
def random(units: SiteUnits) -> Tensor:
    """Uniform draws from the selection's shared generator: a random order."""
    import torch

    return torch.rand(units.num_units, generator=units.generator)


@CRITERIA.register(
    "magnitude",
    label="magnitude",
    help="weight magnitude ||W1[j]|| * ||W2[:, j]|| (the paper's baseline; no data needed)",
    card="the neurons of smallest weight magnitude (the paper's baseline: the norm of "
    "their input weights times that of their output weights)",
    needs_weights=True,
)
def magnitude(units: SiteUnits) -> Tensor:
    """``||rows into the unit|| * ||columns out of it||``. A gated neuron's input rows are
    its gate and value rows together; a group's norms are over all its channels."""
    rows = sum(w.detach().flatten(1).double().square().sum(1) for w in units.fc1_weights)  # (C,)
    columns = units.fc2_weight.detach().double().square().sum(0)  # (C,)
    return (units.per_unit(rows) * units.per_unit(columns)).sqrt()


@CRITERIA.register(
    "obs",
    label="OBS",
    help="the greedy error of least squares (Optimal Brain Surgeon style; needs "
    "statistics with covariance; best with compensate ls)",
    card="the neurons whose loss the next layer can best make up for (vbprune's OBS "
    "criterion: the greedy order of least-squares error, from the activations' "
    "covariance)",
    needs_covariance=True,
    needs_weights=True,
    compensation="ls",
)
def obs(units: SiteUnits) -> Tensor:
    """Per unit, the error increase of the greedy least-squares removal order, in fc2's
    output units (:func:`vbprune.core.least_squares.obs_removal_scores`; a head: its
    group of channels removed at once, :func:`~.least_squares.obs_group_scores`)."""
    from .least_squares import obs_group_scores, obs_removal_scores

    cov = units.moments().cov.to(units.fc2_weight.device)
    if units.unit_size != 1:  # a head: the greedy order of whole groups of channels
        return obs_group_scores(units.fc2_weight.detach(), cov, units.unit_size)
    return obs_removal_scores(units.fc2_weight.detach(), cov)


@CRITERIA.register(
    "fluctuation",
    label="fluctuation",
    help="variance times the squared norm of the next layer's column (FLAP's fluctuation: "
    "the output variance a unit carries)",
    card="the units carrying the least output variance (FLAP's fluctuation: each "
    "activation's variance times the squared norm of its column in the next layer)",
    needs_weights=True,
)
def fluctuation(units: SiteUnits) -> Tensor:
    """``var_j * ||W2[:, j]||^2`` summed over each unit's channels: the variance the unit
    adds to the next layer's output if the channels were uncorrelated. Comparable between
    MLP neurons and heads (both in the residual stream's units)."""
    columns = units.fc2_weight.detach().double().square().sum(0)  # (C,)
    return units.per_unit(units.moments().var.to(columns.device).double() * columns)
