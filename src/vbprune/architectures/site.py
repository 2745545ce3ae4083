"""The record that says where one prunable MLP lives in a model, and how to shrink it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..core import surgery
from ..core.compat import RenamedAttribute


@dataclass(frozen=True, eq=False)
class MLPSite:
    """One two-layer MLP ``fc2(post(act(fc1(x))))`` whose hidden neurons can be pruned.

    Attributes:
        name: Module path of the MLP (for HF ConvNeXt, the block that holds ``pwconv1/2``).
        fc1: The expanding layer (``nn.Linear``, or ``nn.Conv2d`` with a 1x1 kernel).
        fc2: The projecting layer, same kind as ``fc1``.
        grn: Optional Global Response Norm between activation and ``fc2`` (ConvNeXt v2);
            its weight and bias are indexed by the hidden channel on their last dimension.
        module: The module at ``name``; metadata such as timm's ``hidden_features`` is
            updated on it when the width changes.
    """

    name: str
    fc1: nn.Module
    fc2: nn.Module
    grn: nn.Module | None = None
    module: nn.Module | None = None

    hidden_size = RenamedAttribute("width")  # vbprune 0.1's name

    @property
    def width(self) -> int:
        """Current number of hidden neurons (rows of ``fc1``)."""
        return int(self.fc1.weight.shape[0])

    @property
    def is_conv(self) -> bool:
        """True when the MLP is made of 1x1 convolutions (channels on dim 1, NCHW)."""
        return isinstance(self.fc2, nn.Conv2d)

    def fold(self, pruned: Tensor, mean: Tensor) -> None:
        """Fold the mean activations ``mean`` of neurons ``pruned`` into fc2's bias."""
        surgery.fold_means_into_bias(self.fc2, pruned, mean)

    def shrink(self, keep: Tensor) -> None:
        """Keep only the hidden neurons ``keep`` (sorted indices), in place."""
        channel_modules = [self.grn] if self.grn is not None else []
        surgery.shrink_mlp(self.fc1, self.fc2, keep, channel_modules)
        if self.module is not None and hasattr(self.module, "hidden_features"):
            self.module.hidden_features = self.width  # timm's Mlp records its width
