"""Shrink an MLP to the kept neurons and fold the removed ones' means into fc2 (torch only).

Each function replaces parameters AND updates module metadata together, so a shrunk
``nn.Linear``/``nn.Conv2d`` reports its true width and runs at the smaller size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .architectures.site import MLPSite


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


def shrink_mlp(site: MLPSite, keep: Tensor) -> None:
    """Keep only the hidden neurons ``keep`` of an MLP (rows of fc1, columns of fc2, GRN).

    Args:
        site: The MLP to shrink, in place.
        keep: ``(K,)`` sorted indices of the neurons to keep.
    """
    fc1, fc2 = site.fc1, site.fc2
    keep = keep.to(fc1.weight.device)
    _replace(fc1, "weight", fc1.weight.detach()[keep])  # (K, in[, 1, 1])
    if fc1.bias is not None:
        _replace(fc1, "bias", fc1.bias.detach()[keep])
    _replace(fc2, "weight", fc2.weight.detach()[:, keep])  # (out, K[, 1, 1])
    if site.grn is not None:
        # timm stores GRN weight/bias as (H,), transformers as (1, 1, 1, H).
        for name in ("weight", "bias"):
            _replace(site.grn, name, getattr(site.grn, name).detach()[..., keep])
    width = int(keep.numel())
    if isinstance(fc1, nn.Conv2d):
        fc1.out_channels, fc2.in_channels = width, width
    else:
        fc1.out_features, fc2.in_features = width, width
    if site.module is not None and hasattr(site.module, "hidden_features"):
        site.module.hidden_features = width
