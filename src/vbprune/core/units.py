"""What a criterion or a compensation sees of one site (torch only).

A site is one layer ``fc2`` whose input channels are pruned (an MLP's hidden neurons).
Its channels form **units**, what is ranked and removed together: one neuron is one
channel; an attention head would be a group of ``unit_size`` consecutive channels of
the output projection's input. Criteria score units; compensations and surgery work on
channels, so the same mean fold and least squares serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import StatisticsError
from .statistics import NeuronStats


@dataclass(frozen=True)
class SiteUnits:
    """The units of one site with their statistics and the weights around them.

    Attributes:
        name: The site's name (a module path).
        stats: Statistics of the ``C`` channels at fc2's input (``None`` when a criterion
            that needs none is scored without them).
        fc2_weight: ``(out, C)`` weight of fc2 (a 1x1 kernel squeezed), or ``None``.
        fc1_weights: Per projection producing the channels, its ``(C, in)`` rows (a gated
            MLP has two: gate and value; a packed one is split into its halves).
        unit_size: Channels per unit (1: a neuron); unit ``u`` is channels
            ``[u * unit_size, (u + 1) * unit_size)``.
        generator: The random generator of random criteria, shared by the sites of one
            selection (seeded with ``PruningConfig.seed``) so draws follow site order.
    """

    name: str
    stats: NeuronStats | None = None
    fc2_weight: Tensor | None = None
    fc1_weights: tuple[Tensor, ...] = ()
    unit_size: int = 1
    generator: torch.Generator | None = None

    @property
    def num_channels(self) -> int:
        """``C``, the channels at fc2's input."""
        if self.fc2_weight is not None:
            return int(self.fc2_weight.shape[1])
        return int(self.moments().mean.numel())

    @property
    def num_units(self) -> int:
        """``C / unit_size``."""
        return self.num_channels // self.unit_size

    def moments(self) -> NeuronStats:
        """The statistics, or a :class:`StatisticsError` saying that they are needed."""
        if self.stats is None:
            raise StatisticsError(f"{self.name}: this needs calibration statistics")
        return self.stats

    def per_unit(self, values: Tensor) -> Tensor:
        """Per-channel ``(C,)`` values summed over each unit: ``(U,)``."""
        return values.reshape(self.num_units, self.unit_size).sum(1)  # (U, unit_size) -> (U,)

    def channels(self, units: Tensor) -> Tensor:
        """The channel indices (ascending for ascending ``units``) of these units."""
        offsets = torch.arange(self.unit_size, device=units.device)
        return (units.unsqueeze(1) * self.unit_size + offsets).reshape(-1)  # (U', size) -> flat


@dataclass(frozen=True)
class Removal:
    """What a compensation is told of one site's pruning.

    Attributes:
        keep: ``(K,)`` ascending indices of the kept channels.
        pruned: ``(P,)`` ascending indices of the removed channels.
        mean: ``(P,)`` float64 calibration means of the removed channels (recorded in the
            plan, so the mean fold replays without the statistics).
    """

    keep: Tensor
    pruned: Tensor
    mean: Tensor


@dataclass(frozen=True)
class Correction:
    """A compensation's result: changes to fc2, added before the channels are sliced.

    Attributes:
        weight: ``(out, K)`` float64 added to fc2's kept columns, or ``None``.
        bias: ``(out,)`` float64 added to fc2's output (its bias, created if missing),
            or ``None``.
    """

    weight: Tensor | None = None
    bias: Tensor | None = None
