"""Model size: parameters and multiply-accumulates (MACs), attention products included."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..architectures.interface import input_size as model_input_size
from ..core.errors import ConfigError

aten = torch.ops.aten


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model`` (shared parameters once; buffers not counted).

    Args:
        model: Any module (unlike :func:`count_macs`, no input is needed).

    Returns:
        The number of parameter elements.
    """
    return sum(p.numel() for p in model.parameters())


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # q (B, Hq, L, E) @ k^T -> scores (B, Hq, L, S); scores @ v (B, Hkv, S, Ev).
    # Heads of k/v broadcast to the query's (grouped-query attention).
    batch, heads, length, dim = query_shape
    source, value_dim = key_shape[-2], value_shape[-1]
    return 2 * batch * heads * length * source * (dim + value_dim)


# torch's counter knows the CUDA fused-attention kernels but not the CPU ones, which
# would silently drop the attention products (DeiT-B: 16.85 G instead of 17.56 G).
_EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
    aten._scaled_dot_product_fused_attention_overrideable: _attention_flops,
}


def count_macs(
    model: nn.Module, input_size: Sequence[int] | None = None, batch_size: int = 1
) -> int:
    """Count the multiply-accumulates of one forward pass.

    Every matmul and convolution is counted, including the attention score and value
    products (also inside fused ``scaled_dot_product_attention``); element-wise work
    (norms, activations, softmax) is not. DeiT-B at 224 px gives 17.56 G.

    Args:
        model: Any model taking an image tensor as its first argument.
        input_size: ``(C, H, W)`` of one image, or a full ``(B, C, H, W)`` shape.
            Default: the model's own input size,
            :func:`vbprune.architectures.interface.input_size` (a timm model: the
            ``img_size`` and ``in_chans`` it was built with, e.g. 32 px for
            ``timm.create_model(..., img_size=32)``; a transformers model:
            ``config.image_size`` and ``config.num_channels``).
        batch_size: Images per forward when ``input_size`` has three entries (or is
            not given).

    Returns:
        MACs of one forward pass over the whole batch.

    Raises:
        ConfigError: ``input_size`` is neither ``(C, H, W)`` nor ``(B, C, H, W)``, or is
            not given for a model of neither timm nor transformers.
    """
    if input_size is None:
        input_size = model_input_size(model)
    shape = tuple(input_size)
    if len(shape) == 3:
        shape = (batch_size, *shape)
    if len(shape) != 4:
        raise ConfigError(f"input_size must be (C, H, W) or (B, C, H, W), got {input_size}")
    param = next(model.parameters())
    images = torch.zeros(shape, dtype=param.dtype, device=param.device)
    modes = {module: module.training for module in model.modules()}
    # The counter's module tracker hooks autograd on every module input that requires
    # grad; a parameter passed straight into a submodule (PiT's and CaiT's class token,
    # Perceiver's latents) has no grad_fn under no_grad and breaks it: freeze meanwhile.
    trainable = [p for p in model.parameters() if p.requires_grad]
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    try:
        model.eval()
        for param in trainable:
            param.requires_grad_(False)
        with torch.no_grad(), counter:
            model(images)
    finally:
        for param in trainable:
            param.requires_grad_(True)
        for module, training in modes.items():
            module.train(training)
    return counter.get_total_flops() // 2
