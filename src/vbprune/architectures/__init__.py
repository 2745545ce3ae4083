"""Architecture adapters: the only code that knows where each framework keeps its MLPs.

``backend`` says which library a model is from; ``timm`` and ``hf`` find the MLP sites of
each; ``site.MLPSite`` applies the core surgery to one of them; ``widths`` resizes a
freshly built model to recorded widths; ``interface`` knows each backend's input size
and output format. Nothing here imports timm or transformers at module level.
"""

from __future__ import annotations

from torch import nn

from ..core.errors import UnsupportedModelError
from .backend import Backend, model_backend
from .hf import HF_FAMILIES, find_hf_sites, supports_hf
from .site import MLPSite
from .timm import TIMM_FAMILIES, find_timm_sites, supports_timm

SUPPORTED_FAMILIES = (
    "timm VisionTransformer (ViT, DeiT), SwinTransformer, ConvNeXt (v1 incl. conv_mlp, v2); "
    "transformers ViT, DeiT, Swin, ConvNeXt, ConvNeXtV2 (model_type " + ", ".join(HF_FAMILIES) + ")"
)

# backend -> (find its sites, does it know this model's family)
_ADAPTERS = {"timm": (find_timm_sites, supports_timm), "transformers": (find_hf_sites, supports_hf)}


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
    finder, supports = _ADAPTERS.get(model_backend(model), (None, None))
    if finder is None or not supports(model):
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        kind = f" (model_type {model_type!r})" if model_type else ""
        raise UnsupportedModelError(
            f"vbprune does not support {type(model).__module__}.{type(model).__name__}{kind}. "
            f"Supported: {SUPPORTED_FAMILIES}."
        )
    sites = finder(model)  # a known family whose MLP is of an unknown kind raises here
    if not sites:
        raise UnsupportedModelError(f"no MLP found in {type(model).__name__}")
    return sites


def mlp_widths(model: nn.Module) -> dict[str, int]:
    """The hidden width of every MLP of ``model``, by site name, in forward order."""
    return {site.name: site.width for site in find_mlp_sites(model)}


__all__ = [
    "HF_FAMILIES",
    "SUPPORTED_FAMILIES",
    "TIMM_FAMILIES",
    "Backend",
    "MLPSite",
    "UnsupportedModelError",
    "find_mlp_sites",
    "mlp_widths",
    "model_backend",
]
