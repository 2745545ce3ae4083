"""Find the prunable MLPs of a model by walking its modules and matching the layout table.

No model names: every module whose class has a row in :mod:`.layouts` and whose
structure fits the row (projections of the right kind and width, per-channel modules
between them) is a site. A module that looks like an MLP (its class name says MLP or
FFN) but has no fitting row makes the model unsupported, so no MLP is silently left
unpruned or pruned wrongly.
"""

from __future__ import annotations

import difflib
import re

import torch
from torch import nn

from ..core import surgery
from ..core.errors import UnsupportedModelError
from .layouts import (
    IGNORED,
    IGNORED_ATTENTION,
    IGNORED_ATTRIBUTES,
    UNPRUNABLE,
    UNPRUNABLE_CHANNELS,
    AttentionLayout,
    MLPLayout,
    all_class_names,
    attention_rows_for,
    rows_for,
)
from .site import AttentionSite, MLPSite

_LOOKS_LIKE_MLP = re.compile(r"mlp|ffn|feedforward", re.IGNORECASE)
_LIBRARIES = ("timm", "transformers")


def _library(module: nn.Module) -> str | None:
    top = type(module).__module__.split(".", 1)[0]
    return top if top in _LIBRARIES else None


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _projection_problem(layer: nn.Module | None, path: str) -> str | None:
    if isinstance(layer, nn.Linear):
        return None
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if set(layer.kernel_size) == {1} and layer.groups == 1:
            return None
        return f"{path} is a {layer.kernel_size} convolution with {layer.groups} groups"
    kind = "missing" if layer is None else f"a {type(layer).__name__}"
    return f"{path} is {kind}, not a Linear or 1x1 convolution"


def _channel_problem(module: nn.Module, path: str, width: int) -> str | None:
    kind = type(module).__name__  # known unprunable kinds were refused by _match already
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
        size = module.num_features if hasattr(module, "num_features") else module.normalized_shape
        return None if size in (width, (width,)) else f"{path} normalises {size} channels"
    if surgery.is_depthwise(module):
        return (
            None if module.out_channels == width else f"{path} has {module.out_channels} channels"
        )
    if isinstance(module, nn.GroupNorm) and module.num_groups != 1:
        return f"{path} is a GroupNorm with {module.num_groups} groups over the hidden units"
    if isinstance(module, nn.modules.conv._ConvNd):
        return f"{path} is a {module.kernel_size} convolution mixing hidden channels"
    if any(True for child in module.children() for _ in child.parameters()):
        return f"{path} is a {kind} with submodules; its channel use is unknown"
    values = [v for v in module.parameters(recurse=False)]
    if not values:
        return f"{path} is a {kind} without parameters; only Identity is skipped"
    for value in values:
        if value.shape[-1] != width and (value.dim() < 2 or value.shape[1] != width):
            return f"{path} ({kind}) has a parameter of shape {tuple(value.shape)}, not per channel"
    return None


def _match(row: MLPLayout, module: nn.Module, name: str) -> MLPSite | str:
    """The site of ``module`` under ``row``, or why it does not fit."""
    for path in row.channels:  # a known unprunable part says more than a width mismatch
        kind = type(_get(module, path)).__name__
        reason = UNPRUNABLE.get(kind) or UNPRUNABLE_CHANNELS.get(kind)
        if reason:
            return f"{path} is a {kind}: {reason}"
    fc2 = _get(module, row.fc2)
    problem = _projection_problem(fc2, row.fc2)
    if problem:
        return problem
    width = int(fc2.weight.shape[1])
    inputs = [_get(module, path) for path in row.fc1_paths]
    rows = 2 * width if row.packed else width
    for layer, path in zip(inputs, row.fc1_paths):
        problem = _projection_problem(layer, path)
        if problem:
            return problem
        if layer.weight.shape[0] != rows:
            return f"{path} has {layer.weight.shape[0]} outputs, {row.fc2} takes {width}"
    channels, channel_paths = [], []
    for path in row.channels:
        channel = _get(module, path)
        if channel is None or isinstance(channel, nn.Identity):
            continue
        problem = _channel_problem(channel, path, width)
        if problem:
            return problem
        channels.append(channel)
        channel_paths.append(_join(name, path))
    gate = inputs[0] if len(inputs) == 2 else None
    grn = next((c for c in channels if "ResponseNorm" in type(c).__name__ or
                type(c).__name__.endswith("GRN")), None)  # fmt: skip
    paths = {
        "fc1": [_join(name, p) for p in row.fc1_paths],
        "fc2": _join(name, row.fc2),
        "channels": channel_paths,
        "packed": row.packed,
    }
    fc2_norm = _get(module, row.fc2_norm) if row.fc2_norm else None
    return MLPSite(name, inputs[-1], fc2, grn, module, gate, row.packed, tuple(channels),
                   f"{row.library}/{type(module).__name__}", paths, fc2_norm)  # fmt: skip


def find_sites(model: nn.Module) -> tuple[list[MLPSite], list[str]]:
    """All sites of ``model`` in forward (module) order, and the MLP-like modules that
    could not be matched, each with the reason."""
    sites: list[MLPSite] = []
    problems: list[str] = []
    # named_modules walks depth first: a handled subtree (a site, an ignored module) is
    # one run of names under its prefix, so one prefix at a time is enough
    skipped = None
    for name, module in model.named_modules():
        if skipped is not None and name.startswith(skipped):
            continue
        library = _library(module)
        kind = type(module).__name__
        if (
            name.rsplit(".", 1)[-1] in IGNORED_ATTRIBUTES
            or kind in IGNORED
            or kind.endswith("ClassifierHead")  # heads: their hidden units are pre-logits
        ):
            skipped = name + "."
            continue
        if library is None:
            continue
        rows = rows_for(library, kind)
        reasons = []
        for row in rows:
            site = _match(row, module, name)
            if isinstance(site, MLPSite):
                sites.append(site)
                skipped = name + "."
                break
            if row.strict:
                reasons.append(site)
        else:
            if reasons:
                problems.append(f"{name or 'the model'} ({library} {kind}): {'; '.join(reasons)}")
            elif kind in UNPRUNABLE:
                problems.append(f"{name} ({library} {kind}): {UNPRUNABLE[kind]}")
            elif name and _LOOKS_LIKE_MLP.search(kind):
                close = difflib.get_close_matches(kind, all_class_names(), n=3, cutoff=0.4)
                hint = f" (closest rows: {', '.join(close)})" if close else ""
                problems.append(
                    f"{name} is a {library} {kind}, which has no row in the table of MLP "
                    f"layouts{hint}"
                )
    return sites, problems


# where the supported families, classes and reasons for refusals are listed
SUPPORTED_MODELS_DOC = "see docs/supported_models.md"


def unsupported_error(model: nn.Module, problems: list[str]) -> UnsupportedModelError:
    """The error for a model with unmatched MLPs, or with none at all."""
    kind = type(model).__name__
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return UnsupportedModelError(f"vbprune cannot prune {kind}: {problems[0]}{more}")
    return UnsupportedModelError(
        f"vbprune cannot prune {kind}: no module of a known MLP layout found (a network of "
        f"convolutions alone has none); {len(all_class_names())} MLP classes of timm and "
        f"transformers are supported: {SUPPORTED_MODELS_DOC}"
    )


# --- attention ----------------------------------------------------------------------

_LOOKS_LIKE_ATTENTION = re.compile(r"attention|attn", re.IGNORECASE)
_CONTAINERS = re.compile(r"(block|layer|stage|encoder|head|pool\w*|model)$", re.IGNORECASE)
_VALUE_NAMES = ("v_proj", "value", "v", "wv")


def _attention_library(module: nn.Module) -> str | None:
    top = type(module).__module__.split(".", 1)[0]
    return top if top in (*_LIBRARIES, "torch") else None


def _first_int(module: nn.Module, paths: tuple[str, ...]) -> tuple[str, int] | None:
    for path in paths:
        value = surgery.lookup(module, path)
        if isinstance(value, int) and not isinstance(value, bool):
            return path, value
    return None


def _match_attention(row: AttentionLayout, module: nn.Module, name: str) -> AttentionSite | str:
    """The attention site of ``module`` under ``row``, or why it does not fit."""
    if row.refused:
        return row.refused
    proj = _get(module, row.proj)
    if not isinstance(proj, nn.Linear):
        return f"{row.proj} is {'missing' if proj is None else type(proj).__name__}, not a Linear"
    width = int(proj.weight.shape[1])
    heads = _first_int(module, row.heads)
    if heads is None:
        return f"no head count ({', '.join(row.heads)})"
    num_heads = heads[1]
    for attribute in ("num_kv_heads", "num_key_value_heads"):
        kv_heads = getattr(module, attribute, None)
        if isinstance(kv_heads, int) and kv_heads != num_heads:
            return (f"{kv_heads} K/V heads are shared by {num_heads} query heads "
                    "(grouped-query attention)")  # fmt: skip
    head_dim = surgery.lookup(module, row.head_dim) if row.head_dim else None
    if not isinstance(head_dim, int):
        head_dim = width // num_heads if num_heads and width % num_heads == 0 else None
    if not head_dim or head_dim * num_heads != width:
        return f"{row.proj} takes {width} channels, not {num_heads} heads of {head_dim}"
    inputs, value = [], None
    for path in row.inputs:
        layer = _get(module, path)
        if layer is None:
            continue
        if not isinstance(layer, nn.Linear) or layer.weight.shape[0] % width:
            return f"{path} is not a Linear with a multiple of {width} outputs"
        inputs.append(path)
        blocks = layer.weight.shape[0] // width
        if path.rsplit(".", 1)[-1] in _VALUE_NAMES:
            value = layer.weight
        elif blocks > 1:  # fused qkv, packed kv: the value block is the last
            value = layer.weight[(blocks - 1) * width :]
    if not inputs:
        return f"none of {', '.join(row.inputs)} found"
    head_params = []
    for path, dim in row.head_params:
        table = surgery.lookup(module, path)
        if table is None:
            continue
        if not isinstance(table, torch.Tensor) or table.shape[dim] != num_heads:
            return f"{path} is not indexed by the {num_heads} heads along dimension {dim}"
        head_params.append([path, dim])
    channel_params = [p for p in row.channel_params if surgery.lookup(module, p) is not None]
    channel_modules = [
        p for p in row.channel_modules
        if _get(module, p) is not None and not isinstance(_get(module, p), nn.Identity)
    ]  # fmt: skip
    spec = {
        "inputs": inputs, "proj": row.proj, "head_dim": head_dim, "head_params": head_params,
        "channel_params": channel_params, "channel_modules": channel_modules,
        "heads": [p for p in row.heads if surgery.lookup(module, p) is not None],
        "channels": [p for p in row.channels if surgery.lookup(module, p) is not None],
    }  # fmt: skip
    return AttentionSite(name, module, proj, head_dim, spec,
                         f"{row.library}/{type(module).__name__}", value,
                         exact=not channel_modules)  # fmt: skip


def _looks_like_attention(module: nn.Module, kind: str) -> bool:
    if not _LOOKS_LIKE_ATTENTION.search(kind) or _CONTAINERS.search(kind):
        return False
    own = any(True for _ in module.parameters(recurse=False))
    return own or any(
        isinstance(child, (nn.Linear, nn.modules.conv._ConvNd)) for child in module.children()
    )


def find_attention_sites_and_problems(model: nn.Module) -> tuple[list[AttentionSite], list[str]]:
    """All attention sites of ``model`` in module order, and the attention modules that
    cannot lose heads, each with the reason."""
    sites: list[AttentionSite] = []
    problems: list[str] = []
    skipped = None
    for name, module in model.named_modules():
        if skipped is not None and name.startswith(skipped):
            continue
        kind = type(module).__name__
        if kind in IGNORED_ATTENTION or kind in IGNORED or kind.endswith("ClassifierHead"):
            skipped = name + "."
            continue
        library = _attention_library(module)
        if library is None:
            continue
        rows = attention_rows_for(library, kind, type(module).__module__)
        reasons = []
        for row in rows:
            if row.when and surgery.lookup(module, row.when) is None:
                continue  # refused only where that part is present
            site = _match_attention(row, module, name)
            if isinstance(site, AttentionSite):
                sites.append(site)
                skipped = name + "."
                break
            reasons.append(site)
        else:
            where = name or "the model"
            if reasons:
                problems.append(f"{where} ({library} {kind}): {'; '.join(reasons)}")
                skipped = name + "."
            elif library != "torch" and name and _looks_like_attention(module, kind):
                problems.append(
                    f"{where} is a {library} {kind}, which has no row in the table of "
                    "attention layouts"
                )
                skipped = name + "."
    return sites, problems
