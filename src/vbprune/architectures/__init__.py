"""Architecture adapters: the only code that knows where each framework keeps its MLPs.

``layouts`` is the table of MLP module classes (timm and transformers) and where their
layers are; ``finder`` walks a model and matches it; ``site.MLPSite`` shows one MLP to
the core (its units, statistics and weights) and applies the core's correction and
surgery to it; ``widths`` resizes a freshly built model to recorded widths; ``backend``
says which library a model is from and ``interface`` knows each backend's input size and
output format. (The probe that checks a layout on a real model is
:mod:`vbprune.evaluation.probe`.) Nothing here imports timm or transformers at module
level.
"""

from __future__ import annotations

from torch import nn

from ..core.errors import UnsupportedModelError
from .backend import Backend, model_backend
from .finder import find_sites, unsupported_error
from .layouts import LAYOUTS, MLPLayout, all_class_names
from .site import MLPSite

SUPPORTED_FAMILIES = (
    "any timm or transformers model whose MLPs are built from these classes: "
    + ", ".join(all_class_names())
    + " (see docs/supported_models.md)"
)


def find_mlp_sites(model: nn.Module) -> list[MLPSite]:
    """Find every prunable MLP of a timm or transformers model.

    Args:
        model: A model whose MLP modules have rows in the layout table
            (:data:`vbprune.architectures.layouts.LAYOUTS`).

    Returns:
        The MLP sites in forward order; site names are module paths
        (e.g. ``blocks.3.mlp``, ``vit.layers.3.mlp``).

    Raises:
        UnsupportedModelError: (a ``ValueError``) naming the MLP module class that has
            no row (and the closest rows), or saying that the model has no MLP at all.
    """
    sites, problems = find_sites(model)
    if problems or not sites:
        raise unsupported_error(model, problems)
    return sites


def mlp_widths(model: nn.Module) -> dict[str, int]:
    """The hidden width of every MLP of ``model``, by site name, in forward order."""
    return {site.name: site.width for site in find_mlp_sites(model)}


__all__ = [
    "LAYOUTS",
    "SUPPORTED_FAMILIES",
    "Backend",
    "MLPLayout",
    "MLPSite",
    "UnsupportedModelError",
    "find_mlp_sites",
    "mlp_widths",
    "model_backend",
]
