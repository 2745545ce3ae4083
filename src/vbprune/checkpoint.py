"""Save pruned models: safetensors weights plus a config that records every MLP's width."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .architectures import find_mlp_sites, is_timm_model
from .outputs import atomic_directory


def pruning_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The ``vbprune`` section of a saved config: library version and width per MLP."""
    from . import __version__

    widths = {site.name: site.hidden_size for site in find_mlp_sites(model)}
    return {"library_version": __version__, "hidden_sizes": widths, **extra}


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` to ``directory`` (created atomically), weights as safetensors only.

    timm models are written in timm's format (``config.json`` + ``model.safetensors``),
    transformers models with ``save_pretrained``; both configs get a ``vbprune`` section
    holding the per-MLP widths and ``metadata`` (ratio, scope, base model, ...).

    Returns:
        The folder written.
    """
    section = pruning_metadata(model, **dict(metadata or {}))
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        if is_timm_model(model):
            from timm.models import save_for_hf

            save_for_hf(model, str(tmp), model_config={"vbprune": section}, safe_serialization=True)
        else:
            model.config.vbprune = section
            model.save_pretrained(str(tmp), safe_serialization=True)
    return Path(directory)
