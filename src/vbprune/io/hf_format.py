"""transformers checkpoints: the pruned subclass of the model's family
(:mod:`vbprune.hf_remote`) with ``auto_map``, so stock transformers loads them with
``trust_remote_code=True``; vbprune itself loads them through the registered classes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import CheckpointError
from .metadata import SECTION, check_section

# config keys of the stock model that a pruned config must not inherit
_STALE_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "mlp_widths",
               "mlp_hidden_sizes", SECTION)  # fmt: skip


def register_auto_classes() -> None:
    """Let ``AutoConfig`` / ``AutoModelForImageClassification`` build pruned models by
    their ``vbprune_*`` model type in this process, without ``trust_remote_code``.

    vbprune's own loaders call it; stock transformers with ``trust_remote_code=True``
    needs nothing (the modeling file is saved with the model).
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    from ..hf_remote.modeling_vbprune import PRUNED_CLASSES

    for config_class, model_class in PRUNED_CLASSES.values():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)


def save_hf(model: nn.Module, directory: Path, section: dict) -> None:
    """Write a transformers model as its pruned class, widths and ``section`` in its config.

    Raises:
        CheckpointError: for a class that has no pruned counterpart.
    """
    from ..hf_remote.modeling_vbprune import PRUNED_CLASSES

    stock = next((c.__name__ for c in type(model).__mro__ if c.__name__ in PRUNED_CLASSES), None)
    if stock is None:
        raise CheckpointError(
            f"cannot save {type(model).__name__}: pruned transformers models are saved as "
            f"one of {sorted(PRUNED_CLASSES)}"
        )
    config_class, model_class = PRUNED_CLASSES[stock]
    values = model.config.to_dict()
    for key in _STALE_KEYS:
        values.pop(key, None)
    config = config_class(**values, mlp_widths=list(section["widths"].values()))
    setattr(config, SECTION, section)
    with torch.device("meta"):
        pruned = model_class(config)  # shapes only; the weights come from ``model``
    pruned.load_state_dict(model.state_dict(), strict=True, assign=True)
    config.register_for_auto_class()
    pruned.register_for_auto_class("AutoModelForImageClassification")
    pruned.save_pretrained(str(directory), safe_serialization=True)
    _save_image_processor(model, directory)


def _save_image_processor(model: nn.Module, directory: Path) -> None:
    """Keep the base model's preprocessing next to the pruned weights, when known."""
    name = getattr(model.config, "_name_or_path", "")
    if not name:
        return
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError):
        return  # nothing saved with the base model: users get the family's defaults
    processor.save_pretrained(str(directory))


def check_hf_config(config: Mapping[str, Any], where: str) -> None:
    """Refuse a config of a family vbprune does not know; check its ``vbprune`` section.

    Raises:
        CheckpointError: for an unknown family or a section without widths.
    """
    from ..hf_remote.layouts import MLP_LAYOUTS, base_model_type

    family = base_model_type(config.get("model_type"))
    if family not in MLP_LAYOUTS:
        raise CheckpointError(
            f"{where}: unknown model family {config.get('model_type')!r}; "
            f"vbprune knows {sorted(MLP_LAYOUTS)}"
        )
    if SECTION in config:
        check_section(config[SECTION], where)


def load_hf(folder: Path, where: str) -> nn.Module:
    """A transformers checkpoint with its weights; refuses any weight left uninitialised.

    Raises:
        CheckpointError: weights whose shapes or names do not match the config.
    """
    from transformers import AutoModelForImageClassification

    register_auto_classes()
    try:
        model, info = AutoModelForImageClassification.from_pretrained(
            str(folder), output_loading_info=True
        )
    except (RuntimeError, ValueError) as error:  # sizes; widths the model cannot take
        raise CheckpointError(f"{where}: weights do not match the config: {error}") from error
    problems = {k: sorted(v)[:3] for k, v in info.items() if v and k != "error_msgs"}
    if problems:  # transformers would initialise missing weights randomly: refuse
        raise CheckpointError(f"{where}: weights do not match the model: {problems}")
    return model.eval()


def build_hf(folder: Path) -> nn.Module:
    """The architecture of a transformers checkpoint, random weights, recorded widths.

    Raises:
        CheckpointError: recorded widths the architecture cannot take.
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    register_auto_classes()
    # a vbprune_* config carries every MLP width: the pruned class is built at those sizes
    hf_config = AutoConfig.from_pretrained(str(folder))
    try:
        return AutoModelForImageClassification.from_config(hf_config).eval()
    except ValueError as error:  # as many widths as MLPs, or it is not this model
        raise CheckpointError(f"{folder}: {error}") from error
