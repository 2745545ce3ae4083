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

from collections.abc import Iterable, Mapping, Sequence

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


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding the attribute at dotted ``path`` below ``root``, and its name."""
    *parents, name = path.split(".")
    module = root
    for part in parents:
        module = getattr(module, part)
    return module, name


def _set_tensor(module: nn.Module, name: str, value: Tensor) -> None:
    """Replace ``module``'s parameter or buffer ``name`` by ``value`` (its kind kept)."""
    if name in module._parameters:
        _replace(module, name, value)
    else:
        _replace_buffer(module, name, value)


def lookup(root: nn.Module, path: str):
    """What the dotted ``path`` names below ``root`` (a module, parameter, buffer or
    attribute), or ``None`` when a part is missing."""
    value = root
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def head_channels(keep_heads: Tensor, head_dim: int, num_heads: int, blocks: int = 1) -> Tensor:
    """The channel indices of the heads ``keep_heads`` in a layer holding ``blocks``
    consecutive blocks of ``num_heads * head_dim`` channels (a fused qkv has three)."""
    offsets = torch.arange(head_dim, device=keep_heads.device)
    one = (keep_heads.unsqueeze(1) * head_dim + offsets).reshape(-1)  # (kept, head_dim) flat
    return torch.cat([one + block * num_heads * head_dim for block in range(blocks)])


def shrink_attention(module: nn.Module, spec: Mapping, keep_heads: Tensor) -> None:
    """Keep only the heads ``keep_heads`` (sorted) of the attention ``module``, in place.

    ``spec`` holds paths relative to ``module`` (a JSON-serialisable record, also what a
    saved transformers config keeps): ``inputs`` (layers whose output rows hold one or
    more blocks of the heads' channels: fused qkv, q, k, v, a gate), ``proj`` (the output
    projection: its input columns), ``head_dim``, ``head_params`` (``[path, dim]``:
    parameters or buffers indexed by head), ``channel_params`` (1-D parameters over one
    or more blocks of channels), ``channel_modules`` (per-channel modules over the heads'
    output), and ``heads``/``channels`` (attributes set to the new head count and
    ``heads * head_dim``). Absent paths are skipped.

    Raises:
        ValueError: a layer whose size is not a whole number of blocks of channels.
    """
    proj = lookup(module, spec["proj"])
    head_dim = int(spec["head_dim"])
    width = int(proj.weight.shape[1])
    num_heads = width // head_dim
    keep_heads = keep_heads.to(proj.weight.device)
    channels = head_channels(keep_heads, head_dim, num_heads)

    def blocks(size: int, where: str) -> int:
        if size % width:
            raise ValueError(f"{where} has {size} channels, not a multiple of {width}")
        return size // width

    for path in spec.get("inputs", ()):
        layer = lookup(module, path)
        if layer is not None:
            count = blocks(int(layer.weight.shape[0]), path)
            keep_outputs(layer, head_channels(keep_heads, head_dim, num_heads, count))
    keep_inputs(proj, channels)
    for path in spec.get("channel_params", ()):
        value = lookup(module, path)
        if value is None:
            continue
        rows = head_channels(keep_heads, head_dim, num_heads, blocks(value.numel(), path))
        _set_tensor(*_parent(module, path), value.detach()[rows])
    for path in spec.get("channel_modules", ()):
        channel_module = lookup(module, path)
        if channel_module is not None and not isinstance(channel_module, nn.Identity):
            keep_channels(channel_module, channels, width)
    for path, dim in spec.get("head_params", ()):
        value = lookup(module, path)
        if value is None:
            continue
        parent, name = _parent(module, path)
        kept_heads = keep_heads.to(value.device)
        _set_tensor(parent, name, value.detach().index_select(int(dim), kept_heads))
        owner = parent  # a Linear whose rows are the heads (a position-bias MLP's last)
        if isinstance(owner, nn.Linear) and name == "weight":
            if owner.bias is not None:
                _replace(owner, "bias", owner.bias.detach()[keep_heads.to(owner.bias.device)])
            owner.out_features = int(keep_heads.numel())
    kept = int(keep_heads.numel())
    for path in spec.get("heads", ()):
        parent, name = _parent(module, path)
        if isinstance(getattr(parent, name, None), int):
            setattr(parent, name, kept)
    for path in spec.get("channels", ()):
        parent, name = _parent(module, path)
        if isinstance(getattr(parent, name, None), int):
            setattr(parent, name, kept * head_dim)
