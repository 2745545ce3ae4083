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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

ENTRY = "vbprune_pruned"
# model_args of the entry that are not the base architecture's
ENTRY_ARGS = (
    "base_architecture", "mlp_widths", "mlp_fc2_bias", "attention_heads", "attention_proj_bias",
)  # fmt: skip


def pruned_timm_model(
    pretrained: bool = False,
    *,
    base_architecture: str,
    mlp_widths: Mapping[str, int],
    mlp_fc2_bias: Sequence[str] = (),
    attention_heads: Mapping[str, int] | None = None,
    attention_proj_bias: Sequence[str] = (),
    **kwargs: Any,
) -> nn.Module:
    """The timm entry ``vbprune_pruned``: ``base_architecture`` with the MLPs resized to
    ``mlp_widths`` (and a zero fc2 bias where the mean fold made one) and, for pruned
    heads, the attention modules to ``attention_heads`` (a zero output-projection bias
    where the fold made one), built and loaded by timm's ``build_model_with_cfg`` with
    the other arguments.

    As the base family's own entry would, it loads weights through the family's
    checkpoint filter (so ``img_size=`` resamples position embeddings) and wraps
    ``features_only`` models the family's way (stages of a Swin or ConvNeXt as timm's
    ``FeatureListNet``, in the model's own ``output_fmt``; blocks of a ViT by getter)."""
    from timm.models import build_model_with_cfg

    # filled in by build(), which timm calls before it wraps features; not empty, as timm
    # replaces an empty feature_cfg (``feature_cfg or {}``) by a dict of its own
    feature_cfg: dict[str, Any] = {"out_indices": None}
    chosen_indices = "out_indices" in kwargs

    def build(**model_kwargs: Any) -> nn.Module:
        import timm

        from ..architectures import find_mlp_sites
        from ..architectures.widths import apply_heads, apply_widths
        from ..core.surgery import ensure_bias

        model = timm.create_model(base_architecture, pretrained=False, **model_kwargs)
        apply_widths(model, mlp_widths, where=base_architecture)
        for site in find_mlp_sites(model):
            if site.name in mlp_fc2_bias:  # made by the fold
                ensure_bias(site.fc2)
        bias = {name: True for name in attention_proj_bias}
        apply_heads(model, attention_heads or {}, bias, where=base_architecture)
        # what vbprune.save_pretrained records for this model: the base architecture's
        # arguments (timm's own record, get_model_args, describes the entry's)
        model.vbprune_base_architecture = base_architecture
        model.vbprune_model_args = dict(model_kwargs)
        stages = hierarchical_stages(model)
        if stages:  # a family of stages: timm wraps them by module, like its own entries
            feature_cfg.setdefault("flatten_sequential", True)
        else:  # a plain ViT: blocks through forward_intermediates
            feature_cfg.setdefault("feature_cls", "getter")
        if not chosen_indices:  # timm's defaults (a ViT shallower than 3: every block)
            blocks = len(getattr(model, "feature_info", None) or []) or 3
            feature_cfg["out_indices"] = tuple(range(stages)) if stages else min(3, blocks)
        return model

    return build_model_with_cfg(
        build, ENTRY, pretrained, feature_cfg=feature_cfg,
        pretrained_filter_fn=checkpoint_filter(base_architecture), **kwargs,
    )  # fmt: skip


def hierarchical_stages(model: nn.Module) -> int:
    """How many feature stages a hierarchical model (Swin, ConvNeXt: each stage at a
    coarser scale) has; 0 for a plain one (ViT: every block at the patch scale), whose
    features timm takes from its last 3 blocks."""
    info = getattr(model, "feature_info", None) or []
    scales = {entry.get("reduction") for entry in info}
    return len(info) if len(scales) > 1 else 0


def checkpoint_filter(base_architecture: str) -> Callable | None:
    """The base family's ``checkpoint_filter_fn`` (timm applies it to every checkpoint it
    loads: position embeddings resampled for another ``img_size``, old key layouts)."""
    import sys

    from timm.models import model_entrypoint

    module = sys.modules.get(model_entrypoint(base_architecture).__module__)
    return getattr(module, "checkpoint_filter_fn", None)


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
    base_architecture: str,
    widths: Mapping[str, int],
    fc2_bias: Sequence[str],
    args: Mapping,
    heads: Mapping[str, int] | None = None,
    proj_bias: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``model_args`` a checkpoint records for the entry (the heads only when pruned,
    so a checkpoint without pruned heads reads as before)."""
    recorded = {"base_architecture": base_architecture, "mlp_widths": dict(widths),
                "mlp_fc2_bias": list(fc2_bias)}  # fmt: skip
    if heads:
        recorded.update(attention_heads=dict(heads), attention_proj_bias=list(proj_bias))
    return {**recorded, **args}
