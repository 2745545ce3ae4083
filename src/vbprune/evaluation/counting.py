"""Model size: parameters and multiply-accumulates (MACs), attention products included."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..architectures.costs import run_counted
from ..architectures.interface import input_size as model_input_size
from ..core.errors import ConfigError


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model`` (shared parameters once; buffers not counted).

    Args:
        model: Any module (unlike :func:`count_macs`, no input is needed).

    Returns:
        The number of parameter elements.
    """
    return sum(p.numel() for p in model.parameters())


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
    counter = run_counted(model, shape)
    return counter.get_total_flops() // 2
