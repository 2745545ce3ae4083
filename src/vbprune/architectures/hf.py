"""Where the MLPs of Hugging Face transformers ViT, DeiT, Swin and ConvNeXt (v1, v2) are.

Keyed by ``config.model_type``; each family names the module class that holds the MLP and
the attribute names of its layers (module paths as built by transformers 5). Nothing here
imports transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .site import MLPSite, UnsupportedModelError


@dataclass(frozen=True)
class HFMLPLayout:
    """How one HF family spells its MLP: holder class and layer attribute names."""

    holder: str
    fc1: str = "fc1"
    fc2: str = "fc2"
    grn: str | None = None


HF_FAMILIES: dict[str, HFMLPLayout] = {
    "vit": HFMLPLayout("ViTMLP"),  # vit.layers.{i}.mlp
    "deit": HFMLPLayout("DeiTMLP"),  # deit.layers.{i}.mlp
    "swin": HFMLPLayout("SwinMLP"),  # swin.encoder.layers.{s}.blocks.{b}.mlp
    "convnext": HFMLPLayout("ConvNextLayer", "pwconv1", "pwconv2"),
    "convnextv2": HFMLPLayout("ConvNextV2Layer", "pwconv1", "pwconv2", grn="grn"),
}


def _model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    # Any transformers model, or a subclass of one defined elsewhere (our pruned models).
    if config is None or not any(
        cls.__module__.startswith("transformers.") for cls in type(model).__mro__
    ):
        return None
    return getattr(config, "model_type", None)


def is_hf_model(model: nn.Module) -> bool:
    """True when ``model`` is a transformers model of a supported family."""
    return _model_type(model) in HF_FAMILIES


def find_hf_sites(model: nn.Module) -> list[MLPSite]:
    """Return the MLP sites of a supported transformers model, in forward order.

    Raises:
        UnsupportedModelError: if ``config.model_type`` is not a supported family.
    """
    model_type = _model_type(model)
    layout = HF_FAMILIES.get(model_type) if model_type else None
    if layout is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} (model_type={model_type!r}) is not a supported "
            "transformers model"
        )
    sites = []
    for name, module in model.named_modules():
        if type(module).__name__ != layout.holder:
            continue
        grn = getattr(module, layout.grn) if layout.grn else None
        fc1, fc2 = getattr(module, layout.fc1), getattr(module, layout.fc2)
        sites.append(MLPSite(name, fc1, fc2, grn, module))
    return sites
