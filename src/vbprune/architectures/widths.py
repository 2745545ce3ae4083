"""Give a freshly built model the MLP widths recorded with a pruned checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..core.errors import CheckpointError
from ..core.surgery import ensure_bias
from . import find_attention_sites, find_mlp_sites
from .finder import find_attention_sites_and_problems
from .site import AttentionSite


def mlp_records(model: nn.Module) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """``mlp_widths`` (``{site: width}``) and ``mlp_layout`` (the module paths of each
    site's layers, and whether fc2 has a bias) of a model, as a transformers config
    records them for :mod:`vbprune.hf_remote` to rebuild the model."""
    sites = find_mlp_sites(model)
    widths = {site.name: site.width for site in sites}
    layout = {site.name: {**site.paths, "fc2_bias": site.fc2.bias is not None} for site in sites}
    return widths, layout


def attention_records(
    model: nn.Module, sites: list | None = None
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """``attention_heads`` (``{site: heads}``) and ``attention_layout`` (each site's
    paths from :class:`~vbprune.architectures.AttentionSite`'s ``spec``, and whether its
    projection has a bias) of every prunable attention module, as a transformers config
    of a model with pruned heads records them. ``sites``: the sites to look at (default:
    every attention site found)."""
    if sites is None:
        sites = find_attention_sites_and_problems(model)[0]
    heads, layout = {}, {}
    for site in sites:
        if isinstance(site, AttentionSite):
            heads[site.name] = site.num_heads
            layout[site.name] = {**site.spec, "proj_bias": site.proj.bias is not None}
    return heads, layout


def apply_heads(
    model: nn.Module,
    heads: Mapping[str, int],
    proj_bias: Mapping[str, bool] | None = None,
    where: str = "model",
) -> None:
    """Give the attention modules of a freshly built model the recorded head counts
    (the first heads are kept: only shapes change, the weights load next), and an
    output-projection bias where the fold made one.

    Raises:
        CheckpointError: for heads of attention modules the model does not have, or
            head counts out of range.
    """
    if not heads:
        return
    sites = {site.name: site for site in find_attention_sites(model)}
    _refuse_unknown(heads, sites, "heads are for attention modules", where)
    for name, count in heads.items():
        site = sites[name]
        if not 1 <= count <= site.num_heads:
            raise CheckpointError(
                f"{where}: {count} heads of {name} is outside [1, {site.num_heads}]"
            )
        with torch.no_grad():
            site.shrink_heads(count)
            if (proj_bias or {}).get(name):
                ensure_bias(site.proj)


def _refuse_unknown(recorded: Mapping[str, int], sites: Mapping, what: str, where: str) -> None:
    unknown = sorted(set(recorded) - set(sites))
    if unknown:
        raise CheckpointError(
            f"{where}: recorded {what} {unknown[:3]} that this architecture does not have"
        )


def apply_widths(
    model: nn.Module,
    widths: Mapping[str, int],
    weight_shapes: Mapping[str, tuple[int, ...]] | None = None,
    where: str = "model",
) -> None:
    """Resize every MLP of a freshly built model to ``widths`` before loading weights.

    With ``weight_shapes`` (name -> shape of the saved tensors) the widths are checked
    against the weights first, and fc2 gets a bias where the saved weights have one.

    Raises:
        CheckpointError: (a ``ValueError``) for widths of MLPs the model does not have,
            widths out of range, or widths that disagree with ``weight_shapes``.
    """
    sites = {site.name: site for site in find_mlp_sites(model)}
    _refuse_unknown(widths, sites, "widths are for MLPs", where)
    # MLPs without a recorded width keep their full width: older versions knew fewer
    # layouts (0.2 did not prune attention-pool MLPs); their weights are checked at load.
    fc_names = {id(m): n for n, m in model.named_modules()}
    for name, width in widths.items():
        site = sites[name]
        fc2_name = fc_names[id(site.fc2)]
        if weight_shapes is not None:
            saved = weight_shapes.get(f"{fc2_name}.weight")
            if saved is None or len(saved) < 2 or saved[1] != width:
                raise CheckpointError(
                    f"{where}: {name} is recorded with width {width}, but its weights "
                    f"{fc2_name}.weight have shape {saved}"
                )
        if not 1 <= width <= site.width:
            raise CheckpointError(f"{where}: width {width} of {name} is outside [1, {site.width}]")
        with torch.no_grad():
            site.shrink(torch.arange(width))  # right shapes; the values load next
            if weight_shapes and f"{fc2_name}.bias" in weight_shapes:
                ensure_bias(site.fc2)  # made by the fold: the saved weights have it
