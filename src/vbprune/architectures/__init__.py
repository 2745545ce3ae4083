"""Architecture adapters: the only code that knows module paths of each model family."""

from __future__ import annotations

from torch import nn

from .hf import HF_FAMILIES, find_hf_sites, is_hf_model
from .site import MLPSite, UnsupportedModelError
from .timm import TIMM_FAMILIES, find_timm_sites, is_timm_model

SUPPORTED_FAMILIES = (
    "timm VisionTransformer (ViT, DeiT), SwinTransformer, ConvNeXt (v1 incl. conv_mlp, v2); "
    "transformers ViT, DeiT, Swin, ConvNeXt, ConvNeXtV2 (model_type " + ", ".join(HF_FAMILIES) + ")"
)


def find_mlp_sites(model: nn.Module) -> list[MLPSite]:
    """Find every prunable MLP of a supported timm or transformers model.

    Args:
        model: A timm or transformers vision model of a supported family.

    Returns:
        The MLP sites in forward order; site names are module paths
        (e.g. ``blocks.3.mlp``, ``vit.layers.3.mlp``).

    Raises:
        UnsupportedModelError: (a ``ValueError``) naming the model class and listing the
            supported families.
    """
    if is_timm_model(model):
        sites = find_timm_sites(model)
    elif is_hf_model(model):
        sites = find_hf_sites(model)
    else:
        raise UnsupportedModelError(
            f"vbprune does not support {type(model).__module__}.{type(model).__name__}. "
            f"Supported: {SUPPORTED_FAMILIES}."
        )
    if not sites:
        raise UnsupportedModelError(f"no MLP found in {type(model).__name__}")
    return sites


__all__ = [
    "HF_FAMILIES",
    "SUPPORTED_FAMILIES",
    "TIMM_FAMILIES",
    "MLPSite",
    "UnsupportedModelError",
    "find_mlp_sites",
]
