"""Shrink an MLP to the kept neurons and correct fc2 for the removed ones (torch only).

The functions work on plain layers: ``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d`` with a 1x1
kernel for the projections, and per-channel modules between them (BatchNorm, LayerNorm
over the hidden units, depthwise convolutions, Global Response Norm). Each replaces
parameters AND updates the module's metadata (``out_features``, ``in_channels``,
``num_features``, ...) together, so a shrunk layer reports its true width and runs at the
smaller size. Which layers form an MLP is the architecture adapters' knowledge
(:class:`vbprune.MLPSite`); they call these.

This file imports only torch and the standard library: it is also copied next to pruned
transformers checkpoints, whose self-contained modeling file resizes layers with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


def _replace(module: nn.Module, name: str, value: Tensor) -> None:
    old = getattr(module, name)
    requires_grad = old.requires_grad if old is not None else True
    setattr(module, name, nn.Parameter(value.contiguous(), requires_grad=requires_grad))


def shift_output(fc2: nn.Module, delta: Tensor, norm: nn.Module | None = None) -> None:
    """Add the constant ``delta`` (``(out,)``) to fc2's output, in float64.

    Into fc2's bias (created when fc2 has none), or, when a bias-free fc2 is followed by a
    BatchNorm ``norm``, into its running mean (``running_mean -= delta``): in eval mode
    ``BN(x + d)`` with running mean ``m`` equals ``BN(x)`` with ``m - d``, so the layers
    keep their parameters and conv+BN fusion (timm's ``fuse()`` of RepViT, SHViT, ...)
    keeps the shift.
    """
    if (
        fc2.bias is None
        and isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and norm.running_mean is not None
    ):
        running = norm.running_mean
        shifted = running.double() - delta.to(running.device).double()
        _replace_buffer(norm, "running_mean", shifted.to(running.dtype))
        return
    bias = ensure_bias(fc2)
    shifted = bias.detach().double() + delta.to(bias.device).double()
    _replace(fc2, "bias", shifted.to(bias.dtype))


def ensure_bias(layer: nn.Module) -> nn.Parameter:
    """``layer``'s bias, created as zeros (one per output, on the weight's device and in
    its dtype) when it has none: the fold gives a bias-free fc2 one, and a checkpoint
    saved after the fold needs it back when the model is rebuilt."""
    if layer.bias is None:
        weight = layer.weight
        zeros = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
        layer.bias = nn.Parameter(zeros, requires_grad=weight.requires_grad)
    return layer.bias


def add_to_inputs(fc2: nn.Module, keep: Tensor, delta: Tensor) -> None:
    """Add ``delta`` (``(out, K)``) to fc2's weight columns ``keep``, in float64."""
    weight = fc2.weight.detach()
    flat = weight.reshape(weight.shape[0], weight.shape[1]).double()  # a 1x1 kernel squeezed
    flat[:, keep.to(weight.device)] += delta.to(weight.device).double()
    _replace(fc2, "weight", flat.to(weight.dtype).reshape(weight.shape))


def _replace_buffer(module: nn.Module, name: str, value: Tensor) -> None:
    module._buffers[name] = value.contiguous()


def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
    """Keep only the output channels ``keep`` of a Linear or convolution (weight rows, bias)."""
    keep = keep.to(layer.weight.device)
    _replace(layer, "weight", layer.weight.detach()[keep])  # (K, in[, kh, kw])
    if layer.bias is not None:
        _replace(layer, "bias", layer.bias.detach()[keep])
    if isinstance(layer, nn.modules.conv._ConvNd):
        layer.out_channels = int(keep.numel())
    else:
        layer.out_features = int(keep.numel())


def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
    """Keep only the input channels ``keep`` of a Linear or 1x1 convolution (weight columns)."""
    keep = keep.to(layer.weight.device)
    _replace(layer, "weight", layer.weight.detach()[:, keep])  # (out, K[, 1, 1])
    if isinstance(layer, nn.modules.conv._ConvNd):
        layer.in_channels = int(keep.numel())
    else:
        layer.in_features = int(keep.numel())


def is_depthwise(module: nn.Module) -> bool:
    """True for a convolution with one filter per channel (``groups == in == out``)."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups == module.in_channels == module.out_channels
    )


def channel_kind(module: nn.Module) -> str:
    """How a module between fc1 and fc2 treats the hidden channels.

    ``"independent"``: each channel is transformed on its own (BatchNorm in eval mode,
    depthwise convolution, a per-channel scale), so removing one leaves the others
    unchanged. ``"coupled"``: the channels are normalised together (LayerNorm, GroupNorm,
    RMSNorm, Global Response Norm), so removing one changes the others slightly.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) or is_depthwise(module):
        return "independent"
    name = type(module).__name__.lower()
    if "batchnorm" in name or "scale" in name or "affine" in name:
        return "independent"
    return "coupled"


def keep_channels(module: nn.Module, keep: Tensor, width: int) -> None:
    """Keep only the hidden channels ``keep`` of a per-channel module between fc1 and fc2.

    Handles BatchNorm (weight, bias and running statistics), depthwise convolutions,
    LayerNorm/GroupNorm over the hidden units, and any other module (Global Response
    Norm, a learned scale) whose parameters and buffers carry the ``width`` hidden
    channels on their last dimension or, for channels-first modules, on dimension 1.

    Raises:
        ValueError: if a parameter has no dimension of size ``width`` to slice.
    """
    keep = keep.to(next(iter(module.state_dict().values()), keep).device)
    if is_depthwise(module):
        keep_outputs(module, keep)
        module.in_channels = module.groups = int(keep.numel())
        return
    for name, value in list(module.named_parameters(recurse=False)) + [
        (n, b) for n, b in module.named_buffers(recurse=False) if b is not None and b.dim()
    ]:
        if value.shape[-1] == width:
            sliced = value.detach()[..., keep]
        elif value.dim() > 1 and value.shape[1] == width:
            sliced = value.detach()[:, keep]
        else:
            raise ValueError(
                f"{type(module).__name__}.{name} has shape {tuple(value.shape)}: no dimension "
                f"of the hidden width {width} to slice"
            )
        if name in module._parameters:
            _replace(module, name, sliced)
        else:
            _replace_buffer(module, name, sliced)
    count = int(keep.numel())
    for attribute in ("num_features", "num_channels", "dim", "channels"):
        if getattr(module, attribute, None) == width:
            setattr(module, attribute, count)
    if getattr(module, "normalized_shape", None) == (width,):
        module.normalized_shape = (count,)


def shrink_mlp(
    fc1: nn.Module | Sequence[nn.Module],
    fc2: nn.Module,
    keep: Tensor,
    channel_modules: Iterable[nn.Module] = (),
    packed: bool = False,
) -> None:
    """Keep only the hidden neurons ``keep`` of ``fc2(act(fc1(x)))``, in place.

    Args:
        fc1: The expanding layer(s): their output rows (and biases) are sliced. A gated
            MLP ``act(gate(x)) * up(x)`` passes both projections.
        fc2: The projecting layer: its input columns are sliced.
        keep: ``(K,)`` sorted indices of the neurons to keep.
        channel_modules: Per-channel modules between them (:func:`keep_channels`).
        packed: ``fc1`` holds the two halves of a gated MLP in one layer (rows ``j`` and
            ``j + width`` form neuron ``j``): both rows are kept or removed.
    """
    width = int(fc2.weight.shape[1])
    layers = [fc1] if isinstance(fc1, nn.Module) else list(fc1)
    rows = torch.cat([keep, keep + width]) if packed else keep
    for layer in layers:
        keep_outputs(layer, rows)
    keep_inputs(fc2, keep)
    for module in channel_modules:
        keep_channels(module, keep, width)
