"""Shrink an MLP to the kept neurons and fold the removed ones' means into fc2 (torch only).

The functions work on plain layers: ``nn.Linear``, or ``nn.Conv2d`` with a 1x1 kernel.
Each replaces parameters AND updates the layer's metadata (``out_features``,
``in_channels``, ...) together, so a shrunk layer reports its true width and runs at the
smaller size. Which layers form an MLP is the architecture adapters' knowledge
(:class:`vbprune.MLPSite`); they call these.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def _replace(module: nn.Module, name: str, value: Tensor) -> None:
    old = getattr(module, name)
    requires_grad = old.requires_grad if old is not None else True
    setattr(module, name, nn.Parameter(value.contiguous(), requires_grad=requires_grad))


def fold_means_into_bias(fc2: nn.Module, pruned: Tensor, mean: Tensor) -> None:
    """Add the removed neurons' constant contribution to ``fc2``'s bias, in float64.

    ``b2 += W2[:, P] @ mean[P]`` before the columns P are sliced away; a bias is created
    when ``fc2`` had none. Exact for neurons whose activation is constant.

    Args:
        fc2: ``nn.Linear`` or 1x1 ``nn.Conv2d``.
        pruned: ``(P,)`` indices of the removed hidden neurons.
        mean: ``(P,)`` their mean activations.
    """
    weight = fc2.weight.detach()
    out_features, width = weight.shape[0], weight.shape[1]
    w2 = weight.reshape(out_features, width)  # (out, H); a 1x1 kernel squeezed
    delta = w2[:, pruned.to(weight.device)].double() @ mean.to(weight.device).double()  # (out,)
    bias = fc2.bias
    if bias is None:
        bias = torch.zeros(out_features, dtype=weight.dtype, device=weight.device)
        fc2.bias = nn.Parameter(bias, requires_grad=fc2.weight.requires_grad)
    _replace(fc2, "bias", (bias.detach().double() + delta).to(bias.dtype))


def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
    """Keep only the output channels ``keep`` of a Linear or 1x1 Conv2d (weight rows, bias)."""
    keep = keep.to(layer.weight.device)
    _replace(layer, "weight", layer.weight.detach()[keep])  # (K, in[, 1, 1])
    if layer.bias is not None:
        _replace(layer, "bias", layer.bias.detach()[keep])
    if isinstance(layer, nn.Conv2d):
        layer.out_channels = int(keep.numel())
    else:
        layer.out_features = int(keep.numel())


def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
    """Keep only the input channels ``keep`` of a Linear or 1x1 Conv2d (weight columns)."""
    keep = keep.to(layer.weight.device)
    _replace(layer, "weight", layer.weight.detach()[:, keep])  # (out, K[, 1, 1])
    if isinstance(layer, nn.Conv2d):
        layer.in_channels = int(keep.numel())
    else:
        layer.in_features = int(keep.numel())


def keep_channels_last(module: nn.Module, keep: Tensor, names: Iterable[str]) -> None:
    """Slice the named parameters of ``module`` to ``keep`` on their last dimension.

    For per-hidden-channel modules between fc1 and fc2, such as a Global Response Norm
    (timm stores its weight and bias as ``(H,)``, transformers as ``(1, 1, 1, H)``).
    """
    for name in names:
        value = getattr(module, name)
        _replace(module, name, value.detach()[..., keep.to(value.device)])


def shrink_mlp(
    fc1: nn.Module,
    fc2: nn.Module,
    keep: Tensor,
    channel_modules: Iterable[nn.Module] = (),
) -> None:
    """Keep only the hidden neurons ``keep`` of ``fc2(act(fc1(x)))``, in place.

    Args:
        fc1: The expanding layer: its output rows (and bias) are sliced.
        fc2: The projecting layer: its input columns are sliced.
        keep: ``(K,)`` sorted indices of the neurons to keep.
        channel_modules: Modules between them whose ``weight`` and ``bias`` are indexed by
            the hidden channel on their last dimension (Global Response Norm).
    """
    keep_outputs(fc1, keep)
    keep_inputs(fc2, keep)
    for module in channel_modules:
        keep_channels_last(module, keep, ("weight", "bias"))
