"""What one unit (an MLP neuron, an attention head) costs: MACs and parameters per site.

Budgets (``PruningConfig(target_macs=...)``) rank units by score per MAC (or parameter)
saved, so selection needs each site's cost per unit. MACs come from torch's
``FlopCounterMode`` run once on the model, per module: a neuron costs its share of its
MLP's layers (fc1 rows, fc2 columns, per-channel modules), a head its share of the
attention's input and output projections plus the attention products (the operations
the attention module runs itself, fused attention included). What does not scale with
the heads (PVTv2's spatial reduction, a position-bias MLP) is left out, so the predicted
total is what :func:`vbprune.count_macs` counts after the pruning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .interface import input_size as model_input_size
from .site import AttentionSite, MLPSite

aten = torch.ops.aten


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # q (B, Hq, L, E) @ k^T -> scores (B, Hq, L, S); scores @ v (B, Hkv, S, Ev).
    # Heads of k/v broadcast to the query's (grouped-query attention).
    batch, heads, length, dim = query_shape
    source, value_dim = key_shape[-2], value_shape[-1]
    return 2 * batch * heads * length * source * (dim + value_dim)


# torch's counter knows the CUDA fused-attention kernels but not the CPU ones, which
# would silently drop the attention products (DeiT-B: 16.85 G instead of 17.56 G).
EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
    aten._scaled_dot_product_fused_attention_overrideable: _attention_flops,
}


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` that also counts CPU fused attention."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)


def run_counted(model: nn.Module, shape: Sequence[int]) -> FlopCounterMode:
    """Run ``model`` once (eval mode, no grad) on zeros of ``shape`` under a counter."""
    param = next(model.parameters())
    images = torch.zeros(tuple(shape), dtype=param.dtype, device=param.device)
    modes = {module: module.training for module in model.modules()}
    # The counter's module tracker hooks autograd on every module input that requires
    # grad; a parameter passed straight into a submodule (PiT's and CaiT's class token,
    # Perceiver's latents) has no grad_fn under no_grad and breaks it: freeze meanwhile.
    trainable = [p for p in model.parameters() if p.requires_grad]
    counter = flop_counter()
    try:
        model.eval()
        for param in trainable:
            param.requires_grad_(False)
        with torch.no_grad(), counter:
            model(images)
    finally:
        for param in trainable:
            param.requires_grad_(True)
        for module, training in modes.items():
            module.train(training)
    return counter


def module_macs(model: nn.Module, shape: Sequence[int] | None = None) -> tuple[int, dict[str, int]]:
    """MACs of one forward of one image (``shape``: ``(1, C, H, W)``, default the model's
    own input size): the total, and per module path (each module's own and its
    children's)."""
    if shape is None:
        shape = (1, *model_input_size(model))
    counter = run_counted(model, shape)
    per_module = {}
    for name, counts in counter.get_flop_counts().items():
        if name == "Global":
            continue
        path = name.split(".", 1)[1] if "." in name else ""  # drop the root's class name
        per_module[path] = sum(counts.values()) // 2
    return counter.get_total_flops() // 2, per_module


def _own_macs(macs: dict[str, int], modules: dict[str, nn.Module], path: str) -> int:
    """MACs of the operations ``path``'s module runs itself, not in a child module."""
    children = (f"{path}.{child}" if path else child for child, _ in modules[path].named_children())
    return macs.get(path, 0) - sum(macs.get(child, 0) for child in children)


def _params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def _mlp_costs(site: MLPSite, macs: dict[str, int]) -> tuple[float, float]:
    paths = [*site.paths.get("fc1", ()), site.paths.get("fc2"), *site.paths.get("channels", ())]
    unit_macs = sum(macs.get(path, 0) for path in paths if path)
    layers = [site.fc1, site.gate, *site.channels]
    unit_params = sum(_params(layer) for layer in layers) + site.fc2.weight.numel()
    return unit_macs / site.width, unit_params / site.width


def _attention_costs(
    site: AttentionSite, macs: dict[str, int], modules: dict[str, nn.Module]
) -> tuple[float, float]:
    spec, prefix = site.spec, site.name
    scaling = {f"{prefix}.{path}" for path in (*spec["inputs"], spec["proj"])}
    # a layer whose weight rows are the heads (Swin V2's position-bias MLP's last) too
    scaling |= {f"{prefix}.{path.removesuffix('.weight')}" for path, _ in spec["head_params"]
                if path.endswith(".weight")}  # fmt: skip
    unit_macs = 0
    for path, module in modules.items():
        if path != prefix and not path.startswith(prefix + "."):
            continue
        if path in scaling:
            unit_macs += macs.get(path, 0)
        elif any(True for _ in module.children()):  # the attention products, run inline
            unit_macs += _own_macs(macs, modules, path)
    unit_params = site.proj.weight.numel()
    for path in spec["inputs"]:
        unit_params += _params(modules[f"{prefix}.{path}"])
    for path in spec["channel_modules"]:
        unit_params += _params(modules[f"{prefix}.{path}"])
    state = dict(site.module.named_parameters())
    for path in spec["channel_params"]:
        unit_params += state[path].numel() if path in state else 0
    for path, _ in spec["head_params"]:
        unit_params += state[path].numel() if path in state else 0
    return unit_macs / site.num_heads, unit_params / site.num_heads


def unit_costs(
    model: nn.Module, sites: Sequence[MLPSite | AttentionSite], shape: Sequence[int] | None = None
) -> dict[str, dict]:
    """The cost of one unit of every site and the model's totals.

    Returns:
        ``{"macs": {site: MACs per unit}, "params": {site: parameters per unit},
        "total": {"macs": ..., "params": ...}}`` for one image at ``shape`` (default
        the model's own input size).
    """
    total, macs = module_macs(model, shape)
    modules = dict(model.named_modules())
    per_macs, per_params = {}, {}
    for site in sites:
        if isinstance(site, AttentionSite):
            per_macs[site.name], per_params[site.name] = _attention_costs(site, macs, modules)
        else:
            per_macs[site.name], per_params[site.name] = _mlp_costs(site, macs)
    params = sum(p.numel() for p in model.parameters())
    return {"macs": per_macs, "params": per_params, "total": {"macs": total, "params": params}}
