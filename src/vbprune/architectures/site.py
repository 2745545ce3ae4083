"""The record that says where one prunable MLP lives in a model, and how to shrink it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ..core import surgery
from ..core.statistics import NeuronStats
from ..core.units import Correction, SiteUnits


@dataclass(frozen=True, eq=False)
class MLPSite:
    """One MLP ``fc2(h)`` with hidden neurons ``h = act(fc1(x))`` that can be pruned.

    For a gated MLP ``h = act(gate(x)) * fc1(x)``: one hidden neuron is one (gate, up)
    pair, removed from both. Calibration records ``h`` as fc2 sees it.

    Attributes:
        name: Module path of the MLP (for layouts that split it over two modules, the
            module that holds both, e.g. transformers' ``Swinv2Layer``).
        fc1: The expanding layer (``nn.Linear`` or a 1x1 convolution); the value ("up")
            projection of a gated MLP, or both halves when ``packed``.
        fc2: The projecting layer, same kind as ``fc1``.
        grn: Global Response Norm between activation and ``fc2`` (ConvNeXt v2), if any;
            it is also in ``channels``.
        module: The module at ``name``; metadata such as timm's ``hidden_features`` is
            updated on it when the width changes.
        gate: The separate gate projection of a gated MLP (SwiGLU), or ``None``.
        packed: ``fc1`` holds the gate and value halves of a gated MLP.
        channels: Per-hidden-channel modules between fc1 and fc2 (BatchNorm, depthwise
            convolution, hidden LayerNorm, GRN), sliced with the neurons.
        layout: The table row that matched (``"timm/Mlp"``: library and module class).
        fc2_norm: The BatchNorm right after a bias-free fc2 (LeViT, RepViT, MobileNet
            blocks), if any: the fold goes into its running mean, so no bias is created.
        paths: Module paths of the parts (``fc1``, ``fc2``, ``channels``) from the model
            root, and ``packed``: what a checkpoint records to resize a fresh model.
    """

    name: str
    fc1: nn.Module
    fc2: nn.Module
    grn: nn.Module | None = None
    module: nn.Module | None = None
    gate: nn.Module | None = None
    packed: bool = False
    channels: tuple[nn.Module, ...] = ()
    layout: str = ""
    paths: Mapping[str, Any] = field(default_factory=dict)
    fc2_norm: nn.Module | None = None

    @property
    def width(self) -> int:
        """Current number of hidden neurons (input channels of ``fc2``)."""
        return int(self.fc2.weight.shape[1])

    @property
    def is_conv(self) -> bool:
        """True when fc2 is a 1x1 convolution (hidden channels on dim 1, NCHW)."""
        return isinstance(self.fc2, nn.modules.conv._ConvNd)

    @property
    def exact(self) -> bool:
        """True when nothing couples the hidden neurons, so removing a neuron whose
        activation is constant, with the fold, leaves the output unchanged.

        False behind a hidden LayerNorm or Global Response Norm: they normalise over all
        hidden channels, so removing one changes the others slightly (ConvNeXt-V2,
        EVA02 base/large). Such sites are still pruned; the fold is then approximate.
        """
        return all(surgery.channel_kind(m) == "independent" for m in self._channel_modules())

    def _channel_modules(self) -> list[nn.Module]:
        extra = [self.grn] if self.grn is not None and self.grn not in self.channels else []
        return [*self.channels, *extra]

    def units(self, stats: NeuronStats | None = None) -> SiteUnits:
        """What a criterion or compensation sees of this MLP: one unit per hidden neuron,
        its statistics and the weights around it (a gated MLP's gate and value rows)."""
        fc1 = self.fc1.weight.detach().flatten(1)  # (H, in) or, packed, (2H, in)
        rows = tuple(fc1.chunk(2)) if self.packed else (fc1,)
        if self.gate is not None:
            rows = (self.gate.weight.detach().flatten(1), *rows)
        return SiteUnits(self.name, stats, self.fc2.weight.detach().flatten(1), rows)

    def correct(self, correction: Correction, keep: Tensor) -> None:
        """Add a compensation's correction to fc2 (before :meth:`shrink`): to the columns
        ``keep`` and to the output (fc2's bias, or the running mean of the BatchNorm
        after a bias-free fc2)."""
        if correction.weight is not None:
            surgery.add_to_inputs(self.fc2, keep, correction.weight)
        if correction.bias is not None:
            surgery.shift_output(self.fc2, correction.bias, self.fc2_norm)

    def shrink(self, keep: Tensor) -> None:
        """Keep only the hidden neurons ``keep`` (sorted indices), in place."""
        inputs = [self.fc1] if self.gate is None else [self.gate, self.fc1]
        surgery.shrink_mlp(inputs, self.fc2, keep, self._channel_modules(), self.packed)
        if self.module is not None and hasattr(self.module, "hidden_features"):
            self.module.hidden_features = self.width  # timm's Mlp records its width
