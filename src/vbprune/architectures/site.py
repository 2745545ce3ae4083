"""The record that says where one prunable MLP lives in a model, and how to shrink it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
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

    kind = "mlp"
    unit_size = 1  # one channel per unit: a neuron

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


@dataclass(frozen=True, eq=False)
class AttentionSite:
    """One attention module whose heads can be pruned.

    A head is ``head_dim`` consecutive channels of the output projection's input (the
    concatenated heads' outputs): calibration records that input, a compensation
    corrects the projection like an MLP's fc2, and the surgery removes the head's rows
    from every input projection (q, k, v or a fused qkv), its columns from the output
    projection and its entries from per-head tables.

    Attributes:
        name: Module path of the attention module (``blocks.3.attn``).
        module: The module at ``name``.
        proj: The output projection (its input columns are the heads' channels).
        head_dim: Channels per head (kept: the softmax scale and fused attention are
            unchanged).
        spec: The paths, relative to ``module``, of every part the surgery touches
            (:func:`vbprune.core.surgery.shrink_attention`), JSON-serialisable: what a
            checkpoint records to resize a fresh model.
        layout: The table row that matched (``"timm/Attention"``).
        value: The rows producing the heads' channels as the output projection sees
            them (the value rows; a criterion reads their norms).
        exact: False when a norm over all heads' channels stands before the output
            projection (a scale norm): removing a head then changes the others.
    """

    name: str
    module: nn.Module
    proj: nn.Module
    head_dim: int
    spec: Mapping[str, Any]
    layout: str = ""
    value: Tensor | None = None
    exact: bool = True
    kind: str = "attention"
    is_conv: bool = False

    @property
    def fc2(self) -> nn.Module:
        """The layer whose input channels are pruned (calibration hooks it)."""
        return self.proj

    @property
    def width(self) -> int:
        """Current number of channels at the output projection's input."""
        return int(self.proj.weight.shape[1])

    @property
    def num_heads(self) -> int:
        """Current number of heads."""
        return self.width // self.head_dim

    @property
    def unit_size(self) -> int:
        """Channels per unit: ``head_dim``."""
        return self.head_dim

    def units(self, stats: NeuronStats | None = None) -> SiteUnits:
        """What a criterion or compensation sees: one unit per head (``head_dim``
        channels), the projection's weight, and the value rows feeding the channels."""
        rows = () if self.value is None else (self.value.detach().flatten(1),)
        return SiteUnits(self.name, stats, self.proj.weight.detach().flatten(1), rows,
                         unit_size=self.head_dim)  # fmt: skip

    def correct(self, correction: Correction, keep: Tensor) -> None:
        """Add a compensation's correction to the output projection (before
        :meth:`shrink`): to the kept channels' columns and to its bias."""
        if correction.weight is not None:
            surgery.add_to_inputs(self.proj, keep, correction.weight)
        if correction.bias is not None:
            surgery.shift_output(self.proj, correction.bias)

    def shrink(self, keep: Tensor) -> None:
        """Keep only the channels ``keep`` (whole heads, sorted), in place."""
        heads = keep.reshape(-1, self.head_dim)[:, 0] // self.head_dim
        surgery.shrink_attention(self.module, self.spec, heads)

    def shrink_heads(self, count: int) -> None:
        """Keep the first ``count`` heads (the shapes a checkpoint records)."""
        surgery.shrink_attention(self.module, self.spec, torch.arange(count))
