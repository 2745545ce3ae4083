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
from .finder import (
    SUPPORTED_MODELS_DOC,
    find_attention_sites_and_problems,
    find_sites,
    unsupported_error,
)
from .layouts import (
    ATTENTION_LAYOUTS,
    LAYOUTS,
    AttentionLayout,
    MLPLayout,
    all_attention_class_names,
    all_class_names,
)
from .site import AttentionSite, MLPSite

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


def find_attention_sites(model: nn.Module) -> list[AttentionSite]:
    """Find every attention module of a timm or transformers model whose heads can be
    pruned.

    Args:
        model: A model whose attention modules have rows in the attention table
            (:data:`vbprune.architectures.layouts.ATTENTION_LAYOUTS`).

    Returns:
        The attention sites in module order, each with ``.name`` (the module path, e.g.
        ``blocks.3.attn``), ``.num_heads`` and ``.head_dim``.

    Raises:
        UnsupportedModelError: (a ``ValueError``) naming an attention module that cannot
            lose heads and why (talking heads, K/V heads shared by several queries, a
            fused ``nn.MultiheadAttention``, a forward that needs every head, no row), or
            saying that the model has no attention at all.
    """
    sites, problems = find_attention_sites_and_problems(model)
    kind = type(model).__name__
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnsupportedModelError(
            f"vbprune cannot prune the heads of {kind}: {problems[0]}{more}"
        )
    if not sites:
        raise UnsupportedModelError(
            f"vbprune cannot prune the heads of {kind}: no attention module of a known "
            f"layout found; {len(all_attention_class_names())} attention classes are "
            f"supported: {SUPPORTED_MODELS_DOC}"
        )
    return sites


def attention_heads(model: nn.Module) -> dict[str, int]:
    """The head count of every prunable attention module of ``model``, by site name."""
    return {site.name: site.num_heads for site in find_attention_sites(model)}


def mlp_widths(model: nn.Module) -> dict[str, int]:
    """The hidden width of every MLP of ``model``, by site name, in forward order."""
    return {site.name: site.width for site in find_mlp_sites(model)}


__all__ = [
    "ATTENTION_LAYOUTS",
    "LAYOUTS",
    "SUPPORTED_FAMILIES",
    "AttentionLayout",
    "AttentionSite",
    "Backend",
    "MLPLayout",
    "MLPSite",
    "UnsupportedModelError",
    "attention_heads",
    "find_attention_sites",
    "find_mlp_sites",
    "mlp_widths",
    "model_backend",
]
