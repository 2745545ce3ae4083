"""Where the MLPs of Hugging Face transformers ViT, DeiT, Swin and ConvNeXt (v1, v2) are.

Keyed by ``config.model_type`` (pruned models, ``vbprune_<family>``, map to their family);
the table itself lives in :mod:`vbprune.hf_remote.layouts`, shared with the modeling file
saved next to pruned models. Nothing here imports transformers.
"""

from __future__ import annotations

from torch import nn

from ..core.errors import UnsupportedModelError
from ..hf_remote.layouts import MLP_LAYOUTS, base_model_type
from .backend import model_backend
from .site import MLPSite

HF_FAMILIES = tuple(MLP_LAYOUTS)


def _model_type(model: nn.Module) -> str | None:
    if model_backend(model) != "transformers":
        return None
    return base_model_type(getattr(model.config, "model_type", None))


def supports_hf(model: nn.Module) -> bool:
    """True when ``model`` is a transformers model of a family vbprune knows."""
    return _model_type(model) in MLP_LAYOUTS


def find_hf_sites(model: nn.Module) -> list[MLPSite]:
    """Return the MLP sites of a supported transformers model, in forward order.

    Raises:
        UnsupportedModelError: if ``config.model_type`` is not a supported family.
    """
    model_type = _model_type(model)
    if model_type not in MLP_LAYOUTS:
        raise UnsupportedModelError(
            f"{type(model).__name__} (model_type={model_type!r}) is not a supported "
            "transformers model"
        )
    holder, fc1_name, fc2_name, grn_name = MLP_LAYOUTS[model_type]
    sites = []
    for name, module in model.named_modules():
        if type(module).__name__ != holder:
            continue
        grn = getattr(module, grn_name) if grn_name else None
        fc1, fc2 = getattr(module, fc1_name), getattr(module, fc2_name)
        sites.append(MLPSite(name, fc1, fc2, grn, module))
    return sites
