"""Pruned transformers models with per-MLP widths, loadable without vbprune.

Variance-Based Pruning removes MLP hidden neurons, so every MLP has its own width.
``config.json`` keeps the stock model type and configuration and adds:

- ``mlp_widths``: ``{site: width}``, the hidden width of every pruned MLP;
- ``mlp_layout``: ``{site: {"fc1": [paths], "fc2": path, "channels": [paths],
  "packed": bool, "fc2_bias": bool}}``, the module paths of each MLP's layers;
- with pruned attention heads, ``attention_heads``: ``{attention module: heads}`` and
  ``attention_layout``: ``{attention module: {"inputs": [...], "proj": ..., "head_dim":
  ..., "head_params": [...], ..., "proj_bias": bool}}`` (paths relative to the module).

This module gives every transformers model class a pruned twin of the same name
(``modeling_vbprune.ViTForImageClassification``, ``...Dinov2ForImageClassification``):
the stock class, whose ``__init__`` resizes those layers before the weights load.
``auto_map`` in ``config.json`` names the twin, so stock
``AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`` loads
the model. This file and ``surgery.py`` import only torch and transformers.
"""

import torch
import transformers

from .surgery import ensure_bias, shrink_attention, shrink_mlp


def resize_mlps(model, widths, layout):
    """Give the MLPs of a freshly built ``model`` the recorded ``widths``.

    Only shapes change here (the first ``width`` neurons are kept); the weights load next.
    The paths are those of the class that was saved (``vit.layers.0.mlp.fc1`` for an image
    classifier); the base model or a backbone of the same checkpoint (``AutoModel``,
    ``AutoBackbone``) holds them without the ``base_model_prefix``.
    """
    modules = dict(model.named_modules())
    if set(widths) != set(layout):
        raise ValueError(
            "config.mlp_widths / mlp_layout name different MLPs: "
            f"{sorted(set(widths) ^ set(layout))[:3]}"
        )
    layout = _rooted(layout, modules, getattr(model, "base_model_prefix", ""))
    missing = sorted({p for parts in layout.values() for p in _paths(parts)} - set(modules))
    if missing:
        raise ValueError(f"config.mlp_widths / mlp_layout do not fit this model: {missing[:3]}")
    for name, parts in layout.items():
        width = widths[name]
        fc2 = modules[parts["fc2"]]
        if not 1 <= width <= fc2.weight.shape[1]:
            raise ValueError(f"width {width} of {name} is outside [1, {fc2.weight.shape[1]}]")
        with torch.no_grad():
            shrink_mlp(
                [modules[p] for p in parts["fc1"]],
                fc2,
                torch.arange(width),
                [modules[p] for p in parts["channels"]],
                parts.get("packed", False),
            )
            if parts.get("fc2_bias"):  # created by the mean fold
                ensure_bias(fc2)


def _paths(parts):
    return [*parts["fc1"], parts["fc2"], *parts["channels"]]


def _rooted(layout, modules, prefix):
    """``layout`` with ``prefix.`` dropped from its paths when that is how this model
    names them (a base model or backbone loading a head model's checkpoint).

    Such a model holds the trunk only: MLPs the head model has outside it (Perceiver's
    decoder) are left out; an MLP only partly there is kept and reported as not fitting.
    """
    paths = [p for parts in layout.values() for p in _paths(parts)]
    if not prefix or all(p in modules for p in paths):
        return layout
    start = prefix + "."
    if not all(p.startswith(start) for p in paths):
        return layout  # reported as not fitting by the caller

    def strip(path):
        return path[len(start) :]

    rooted = {
        name: {**parts, "fc1": [strip(p) for p in parts["fc1"]], "fc2": strip(parts["fc2"]),
               "channels": [strip(p) for p in parts["channels"]]}
        for name, parts in layout.items()
    }  # fmt: skip
    here = {n: parts for n, parts in rooted.items() if any(p in modules for p in _paths(parts))}
    return here if here else layout  # none here at all: not this model's checkpoint


def resize_attention(model, heads, layout):
    """Give the attention modules of a freshly built ``model`` the recorded ``heads`` (the
    first ones are kept: only shapes change, the weights load next). A base model or a
    backbone holds them without the ``base_model_prefix``."""
    modules = dict(model.named_modules())
    prefix = getattr(model, "base_model_prefix", "") + "."
    for name, count in heads.items():
        module = modules.get(name)
        if module is None and name.startswith(prefix):
            module = modules.get(name[len(prefix) :])
        if module is None:
            if any(n in modules for n in heads) or not name.startswith(prefix):
                raise ValueError(f"config.attention_heads do not fit this model: {name}")
            continue  # outside this trunk (a head model's decoder)
        spec = layout[name]
        proj = module.get_submodule(spec["proj"])
        if not 1 <= count <= proj.weight.shape[1] // spec["head_dim"]:
            raise ValueError(f"{count} heads of {name} is out of range")
        with torch.no_grad():
            shrink_attention(module, spec, torch.arange(count))
            if spec.get("proj_bias"):  # created by the fold
                ensure_bias(proj)


class PrunedMixin:
    """Build the stock model, then resize its MLPs to ``config.mlp_widths`` and its
    attention modules to ``config.attention_heads``."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        widths = getattr(config, "mlp_widths", None)
        if widths:
            resize_mlps(self, widths, config.mlp_layout)
        heads = getattr(config, "attention_heads", None)
        if heads:
            resize_attention(self, heads, config.attention_layout)


_CLASSES = {}


def pruned_class(name):
    """The pruned twin of the transformers model class ``name``."""
    if name not in _CLASSES:
        base = getattr(transformers, name, None)
        if not (isinstance(base, type) and issubclass(base, transformers.PreTrainedModel)):
            raise AttributeError(f"transformers has no model class {name!r}")
        doc = f"{name} with MLPs resized to ``config.mlp_widths`` (pruned by vbprune)."
        _CLASSES[name] = type(name, (PrunedMixin, base), {"__module__": __name__, "__doc__": doc})
        _keep_key_renaming(name, base.config_class.model_type)
    return _CLASSES[name]


def _keep_key_renaming(name, model_type):
    """Let transformers rename this family's checkpoint keys for the twin ``name`` too.

    transformers 5 renames old key names at load (ViT's ``encoder.layer.0.attention.
    attention.query`` -> ``layers.0.attention.q_proj``) but skips classes loaded as remote
    code unless their mapping is registered by the user: a twin that is the root model
    (``AutoModel``, ``AutoBackbone``) would leave those weights newly initialised. This
    registers transformers' own mapping (of the class, or for a backbone of the family's
    base model, whose module names it shares) under the twin's name, unchanged. A head
    model needs nothing: its stock base submodule keeps its own, scoped renaming.
    """
    try:
        from transformers import conversion_mapping
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
    except ImportError:  # transformers 4: no renaming to keep
        return
    if name in conversion_mapping.USER_REGISTERED_MAPPINGS:
        return
    base_name = MODEL_MAPPING_NAMES.get(model_type)
    base_name = base_name[0] if isinstance(base_name, tuple) else base_name
    root = name == base_name or name.endswith("Backbone")  # no stock base model inside
    for source in (name, model_type, base_name) if root else (name,):
        mapping = conversion_mapping.get_checkpoint_conversion_mapping(source) if source else None
        if mapping is not None:
            conversion_mapping.register_checkpoint_conversion_mapping(name, mapping, overwrite=True)
            return


def __getattr__(name):
    # ``auto_map`` names a class of this module; it is made on first use.
    if name.startswith("__"):
        raise AttributeError(name)
    return pruned_class(name)
