"""timm-native loading of pruned timm models: one timm model entry, ``vbprune_pruned``.

A pruned timm checkpoint names ``vbprune_pruned`` as its architecture, with the base
architecture and every MLP's width in its ``model_args``, so timm's own loading builds it
at the recorded widths::

    import timm, vbprune  # importing vbprune registers the entry with timm
    model = timm.create_model("local-dir:deit_s_vbp50", pretrained=True, num_classes=10)

``timm.create_model``'s usual arguments work (``num_classes`` with timm's head reset,
``features_only``, ``drop_path_rate``, ...): the entry builds the base architecture,
resizes its MLPs and hands it to timm's ``build_model_with_cfg``, which loads the weights
and wraps features. Without vbprune, timm stops with "Unknown model (vbprune_pruned)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

ENTRY = "vbprune_pruned"
# model_args of the entry that are not the base architecture's
ENTRY_ARGS = ("base_architecture", "mlp_widths", "mlp_fc2_bias")


def pruned_timm_model(
    pretrained: bool = False,
    *,
    base_architecture: str,
    mlp_widths: Mapping[str, int],
    mlp_fc2_bias: Sequence[str] = (),
    **kwargs: Any,
) -> nn.Module:
    """The timm entry ``vbprune_pruned``: ``base_architecture`` with the MLPs resized to
    ``mlp_widths`` (and a zero fc2 bias where the mean fold made one), built and loaded by
    timm's ``build_model_with_cfg`` with the other arguments."""
    from timm.models import build_model_with_cfg

    # every supported family implements forward_intermediates: timm's generic features
    feature_cfg: dict[str, Any] = {"feature_cls": "getter"}
    chosen_indices = "out_indices" in kwargs

    def build(**model_kwargs: Any) -> nn.Module:
        import timm
        import torch

        from ..architectures import find_mlp_sites
        from ..architectures.widths import apply_widths

        model = timm.create_model(base_architecture, pretrained=False, **model_kwargs)
        apply_widths(model, mlp_widths, where=base_architecture)
        for site in find_mlp_sites(model):
            if site.name in mlp_fc2_bias and site.fc2.bias is None:
                weight = site.fc2.weight
                site.fc2.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype))
        if not chosen_indices:  # read by timm after this, for features_only=True
            feature_cfg["out_indices"] = default_out_indices(model)
        return model

    return build_model_with_cfg(build, ENTRY, pretrained, feature_cfg=feature_cfg, **kwargs)


def default_out_indices(model: nn.Module) -> int | tuple[int, ...]:
    """timm's usual feature outputs: every stage of a hierarchical model (Swin, ConvNeXt:
    up to 5), the last 3 blocks of a plain one (ViT, as timm's ViT builder chooses)."""
    stages = len(getattr(model, "feature_info", None) or [])
    return tuple(range(stages)) if 0 < stages <= 5 else 3


def register() -> None:
    """Register ``vbprune_pruned`` with timm (once; later calls do nothing)."""
    from timm.models import is_model, register_model

    if is_model(ENTRY):
        return

    def vbprune_pruned(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return pruned_timm_model(pretrained, **kwargs)

    vbprune_pruned.__module__ = __name__  # timm files entries by their module
    register_model(vbprune_pruned)


def entry_model_args(
    base_architecture: str, widths: Mapping[str, int], fc2_bias: Sequence[str], args: Mapping
) -> dict[str, Any]:
    """The ``model_args`` a checkpoint records for the entry."""
    return {"base_architecture": base_architecture, "mlp_widths": dict(widths),
            "mlp_fc2_bias": list(fc2_bias), **args}  # fmt: skip
