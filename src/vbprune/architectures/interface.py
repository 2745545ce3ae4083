"""How to call a model of each backend: the input size it was built for, where its
logits are."""

from __future__ import annotations

from typing import Any

from torch import nn

from .backend import model_backend


def timm_built_size(model: nn.Module) -> tuple[int, int] | None:
    """``(H, W)`` a timm model's patch embedding was built for, if it has one.

    A model created with another ``img_size`` keeps its name's pretrained_cfg, whose
    ``input_size`` is then wrong: this size is the one to trust.
    """
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    return tuple(size) if size is not None else None


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input image of ``model`` (for MACs and latency)."""
    if model_backend(model) == "timm":
        built_for = timm_built_size(model)
        if built_for is not None:
            return (model.patch_embed.proj.in_channels, *built_for)
        import timm.data

        return tuple(timm.data.resolve_model_data_config(model)["input_size"])
    config = model.config
    size = getattr(config, "image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (getattr(config, "num_channels", 3), *size)


def num_classes(model: nn.Module) -> int | None:
    """How many classes ``model``'s head predicts (``None``: unknown, or no head)."""
    inner = getattr(model, "model", model)  # the Trainer's wrapper of a timm model
    if hasattr(inner, "num_classes"):
        return int(inner.num_classes) or None
    return getattr(getattr(inner, "config", None), "num_labels", None)


def logits_of(output: Any) -> Any:
    """The logits of a model output (timm: the tensor; transformers: ``.logits``)."""
    return output if not hasattr(output, "logits") else output.logits
