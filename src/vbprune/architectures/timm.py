"""Where the MLPs of timm ViT/DeiT, Swin and ConvNeXt (v1, v2) models are.

Knowledge is kept as data: the model class (or a base class) names a path pattern, and
every module on that path must be one of timm's shared MLP classes. Nothing here imports
timm, so ``import vbprune`` stays cheap; classes are recognised by name and module.
"""

from __future__ import annotations

import re

from torch import nn

from ..core.errors import UnsupportedModelError
from .site import MLPSite

# model class name (matched against the class and its bases) -> MLP module path pattern
TIMM_FAMILIES: dict[str, str] = {
    "VisionTransformer": r"blocks\.\d+\.mlp",  # ViT, DeiT (VisionTransformerDistilled too)
    "SwinTransformer": r"layers\.\d+\.blocks\.\d+\.mlp",
    "ConvNeXt": r"stages\.\d+\.blocks\.\d+\.mlp",  # v1 (Linear or conv_mlp) and v2 (GRN)
}
_MLP_CLASSES = ("Mlp", "GlobalResponseNormMlp")


def _family(model: nn.Module) -> str | None:
    for cls in type(model).__mro__:
        if cls.__module__.startswith("timm.") and cls.__name__ in TIMM_FAMILIES:
            return cls.__name__
    return None


def supports_timm(model: nn.Module) -> bool:
    """True when ``model`` is a timm model of a family vbprune knows."""
    return _family(model) is not None


def find_timm_sites(model: nn.Module) -> list[MLPSite]:
    """Return the MLP sites of a supported timm model, in forward order.

    Raises:
        UnsupportedModelError: if the model is not a supported timm family or one of its
            MLPs is not a plain two-layer MLP (for example a gated MLP or a hidden norm).
    """
    family = _family(model)
    if family is None:
        raise UnsupportedModelError(f"{type(model).__name__} is not a supported timm model")
    pattern = re.compile(TIMM_FAMILIES[family])
    sites = []
    for name, module in model.named_modules():
        if not pattern.fullmatch(name):
            continue
        kind = type(module).__name__
        if kind not in _MLP_CLASSES:
            raise UnsupportedModelError(
                f"{name} of {type(model).__name__} is a {kind}; only timm's "
                f"{' and '.join(_MLP_CLASSES)} can be pruned"
            )
        norm = getattr(module, "norm", None)
        if norm is not None and not isinstance(norm, nn.Identity):
            # A norm over the hidden units mixes neurons: removing one changes the others.
            raise UnsupportedModelError(
                f"{name} normalises its hidden units ({type(norm).__name__}); not supported"
            )
        sites.append(MLPSite(name, module.fc1, module.fc2, getattr(module, "grn", None), module))
    return sites
