"""The ``vbprune`` section of a saved model's config: how the model was made.

::

    "vbprune": {
      "library_version": "0.6.0",
      "widths": {"blocks.0.mlp": 903, ...},        # hidden width of every MLP
      "heads": {"blocks.0.attn": 5, ...},          # only if heads were pruned
      "pruning": {"ratio": 0.5, "scope": "global", ...},  # vbprune.PruningConfig
      "base_model": "timm:deit_small_patch16_224",  # a local folder: its absolute path
      "base_model_seed": 0,                         # only if built with random weights
      "model_args": {...},                          # timm only: to rebuild the architecture
      "report": {...}, "speedup": {...}             # optional: what was measured
    }

Sections written by vbprune 0.1 (``hidden_sizes``; ``ratio``, ``scope``, ... beside it)
are read through :func:`upgrade_section`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

from .._version import __version__
from ..architectures import mlp_widths
from ..core.errors import CheckpointError

SECTION = "vbprune"
# Keys of the section this version writes; others (a newer version) are warned of.
KNOWN_KEYS = {"library_version", "widths", "heads", "pruning", "base_model",
              "base_model_seed", "model_args", "report", "speedup"}  # fmt: skip
_LEGACY_PRUNING_KEYS = ("ratio", "scope", "round_to", "min_keep", "compensate")
_RENAMED = {"hidden_sizes": "widths", "original_sizes": "original_widths"}  # 0.1 -> now


def _renamed(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {_RENAMED.get(key, key): value for key, value in mapping.items()}


def _gather_options(mapping: dict[str, Any]) -> None:
    """Move 0.1's loose pruning options into ``pruning`` (which wins where both say)."""
    legacy = {key: mapping.pop(key) for key in _LEGACY_PRUNING_KEYS if key in mapping}
    if legacy:
        pruning = mapping.get("pruning")
        mapping["pruning"] = {**legacy, **pruning} if isinstance(pruning, Mapping) else legacy


def upgrade_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """The section in this version's layout: 0.1's names renamed, its loose pruning
    options gathered under ``pruning`` (and the same in its report)."""
    section = _renamed(section)
    _gather_options(section)
    if isinstance(section.get("report"), Mapping):
        report = _renamed(section["report"])
        _gather_options(report)
        section["report"] = report
    return section


def merge_sections(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` over ``old`` (both upgraded), the ``pruning`` options merged key by key."""
    old, new = upgrade_section(old), upgrade_section(new)
    merged = {**old, **new}
    if isinstance(old.get("pruning"), Mapping) and isinstance(new.get("pruning"), Mapping):
        merged["pruning"] = {**old["pruning"], **new["pruning"]}
    return merged


def pruning_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The ``vbprune`` section of a saved config: library version and width per MLP."""
    return {"library_version": __version__, "widths": mlp_widths(model), **extra}


def loaded_metadata(model: nn.Module) -> Mapping[str, Any]:
    """The ``vbprune`` section a model was loaded with by :func:`vbprune.from_pretrained`
    ({} if none), in this version's layout."""
    section = getattr(model, "vbprune_metadata", None)  # timm, set by from_pretrained
    if section is None:
        section = getattr(getattr(model, "config", None), SECTION, None)  # transformers
    return upgrade_section(section) if isinstance(section, Mapping) else {}


def check_section(section: Mapping[str, Any], where: str, stacklevel: int = 4) -> dict[str, Any]:
    """Upgrade and check a section read from disk: unknown keys warn, widths must be there.

    Raises:
        CheckpointError: if the section records no widths.
    """
    section = upgrade_section(section)
    unknown = sorted(set(section) - KNOWN_KEYS)
    if unknown:
        warnings.warn(
            f"{where}: ignoring vbprune config keys {unknown} (written by a newer vbprune?)",
            stacklevel=stacklevel,
        )
    if not isinstance(section.get("widths"), Mapping):
        raise CheckpointError(f"{where}: the vbprune section records no MLP widths")
    if not isinstance(section.get("pruning", {}), Mapping):
        raise CheckpointError(f"{where}: the vbprune section's pruning is not a mapping")
    return section
