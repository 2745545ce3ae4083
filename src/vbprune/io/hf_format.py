"""transformers checkpoints: the stock configuration plus every MLP's width and layer
paths (``mlp_widths``, ``mlp_layout``) and, with pruned heads, every attention's head
count and parts (``attention_heads``, ``attention_layout``), with a self-contained modeling file
(:mod:`vbprune.hf_remote`) named in ``auto_map``, so stock transformers loads any
supported model type with ``trust_remote_code=True``; vbprune loads them through the
same classes. Checkpoints of vbprune 0.1/0.2 (``model_type`` ``vbprune_<family>``, a
list of widths) still load."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..architectures import find_mlp_sites
from ..architectures.widths import attention_records, mlp_records
from ..core.errors import CheckpointError
from .metadata import SECTION, check_section

LEGACY_PREFIX = "vbprune_"  # model_type of 0.1/0.2 checkpoints: vbprune_vit, ...
_REMOTE_FILES = ("modeling_vbprune.py", "surgery.py")
# auto classes a saved model is registered for, by the stock class's mapping
_AUTO_CLASSES = {
    "AutoModelForImageClassification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModel": "MODEL_MAPPING_NAMES",
}
# the family's base model and backbone, by model type
_FAMILY_AUTO_CLASSES = {
    "AutoModel": "MODEL_MAPPING_NAMES",
    "AutoBackbone": "MODEL_FOR_BACKBONE_MAPPING_NAMES",
}


def _stock_class(model: nn.Module) -> type:
    return next(c for c in type(model).__mro__ if c.__module__.startswith("transformers."))


def _auto_map(class_name: str, config: Any, model: nn.Module) -> dict[str, str]:
    """``auto_map`` entries for the saved class and, of the same model type, its base
    model (``AutoModel``) and backbone (``AutoBackbone``, where the family has one) when
    they can hold the saved weights: all pruned twins from ``modeling_vbprune``, all
    reading the same weights."""
    from transformers.models.auto import modeling_auto

    auto_map = {}
    for auto, mapping in _AUTO_CLASSES.items():
        names = getattr(modeling_auto, mapping).values()
        if any(class_name == n or (isinstance(n, tuple) and class_name in n) for n in names):
            auto_map[auto] = f"modeling_vbprune.{class_name}"
    for auto, mapping in _FAMILY_AUTO_CLASSES.items():
        name = getattr(modeling_auto, mapping).get(config.model_type)
        name = name[0] if isinstance(name, tuple) else name
        if name and auto not in auto_map and _holds_weights_of(name, config, model):
            auto_map[auto] = f"modeling_vbprune.{name}"
    return auto_map or {"AutoModel": f"modeling_vbprune.{class_name}"}


def _holds_weights_of(class_name: str, config: Any, model: nn.Module) -> bool:
    """Whether the pruned twin ``class_name`` of a base model or backbone, built from
    ``config`` (on the meta device: no memory), gives every weight it shares with
    ``model`` the same shape. Not so for Perceiver, whose base model cannot hold its
    classifier's trunk, pruned or not."""
    from ..hf_remote.modeling_vbprune import pruned_class

    try:
        with torch.device("meta"):
            twin = pruned_class(class_name)(config)
    except (ValueError, TypeError, AttributeError, RuntimeError):  # not buildable so
        return False
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    shapes = {}
    for key, value in model.state_dict().items():
        shapes[key] = value.shape
        if key.startswith(prefix):  # how a base model or backbone names the trunk's
            shapes[key[len(prefix) :]] = value.shape
    return all(shapes.get(key, value.shape) == value.shape
               for key, value in twin.state_dict().items())  # fmt: skip


def save_hf(model: nn.Module, directory: Path, section: dict) -> None:
    """Write a transformers model with its widths, layout and ``section`` in its config,
    and the modeling files that let stock transformers rebuild it."""
    from ..hf_remote.modeling_vbprune import pruned_class

    stock = _stock_class(model)
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.mlp_widths, config.mlp_layout = mlp_records(model)
    if getattr(model.config, "attention_heads", None):  # heads were pruned
        config.attention_heads, config.attention_layout = attention_records(model)
        section = {**section, "heads": dict(config.attention_heads)}
    config.architectures = [stock.__name__]
    config.auto_map = _auto_map(stock.__name__, config, model)
    setattr(config, SECTION, section)
    with torch.device("meta"):
        pruned = pruned_class(stock.__name__)(config)  # shapes only; weights from ``model``
    pruned.load_state_dict(model.state_dict(), strict=True, assign=True)
    pruned.save_pretrained(str(directory), safe_serialization=True)
    _copy_remote_files(directory)
    _save_image_processor(model, directory)


def _copy_remote_files(directory: Path) -> None:
    from .. import core, hf_remote

    sources = {
        "modeling_vbprune.py": Path(hf_remote.__file__).parent / "modeling_vbprune.py",
        "surgery.py": Path(core.__file__).parent / "surgery.py",  # the real one, not the shim
    }
    for name in _REMOTE_FILES:
        shutil.copyfile(sources[name], Path(directory) / name)


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
    """Refuse a config transformers cannot build; check its ``vbprune`` section.

    Raises:
        CheckpointError: for an unknown model type or class, or a bad section.
    """
    from transformers import CONFIG_MAPPING

    if _legacy_base_type(str(config.get("model_type"))) not in CONFIG_MAPPING:
        raise CheckpointError(f"{where}: unknown model type {config.get('model_type')!r}")
    if SECTION in config:
        check_section(config[SECTION], where)


def _legacy_base_type(model_type: str) -> str:
    """The stock type of a 0.1/0.2 type: ``vbprune_deit_distilled`` -> ``deit``."""
    if not model_type.startswith(LEGACY_PREFIX):
        return model_type
    return model_type[len(LEGACY_PREFIX) :].removesuffix("_distilled")


def _config_and_class(folder: Path) -> tuple[Any, type]:
    """The stock config (with widths and layout) and the pruned class of a checkpoint."""
    from transformers import AutoConfig

    from ..hf_remote.modeling_vbprune import pruned_class

    values = json.loads((folder / "config.json").read_text())
    if str(values.get("model_type", "")).startswith(LEGACY_PREFIX):
        return _legacy_config_and_class(values)
    config = AutoConfig.from_pretrained(str(folder))
    names = getattr(config, "architectures", None) or []
    try:
        return config, pruned_class(names[0])
    except (AttributeError, IndexError) as error:
        raise CheckpointError(f"{folder}: config.json names no transformers model class") from error


def _legacy_config_and_class(values: dict[str, Any]) -> tuple[Any, type]:
    """A vbprune 0.1/0.2 config (``vbprune_vit``, widths as a list) in today's terms."""
    from transformers import AutoConfig

    from ..hf_remote.modeling_vbprune import pruned_class

    values = dict(values)
    base = _legacy_base_type(values.pop("model_type"))
    widths = values.pop("mlp_widths", None) or values.pop("mlp_hidden_sizes", None) or []
    for key in ("auto_map", "transformers_version", "mlp_hidden_sizes"):
        values.pop(key, None)
    name = values.pop("architectures")[0].removeprefix("VBPrune")
    config = AutoConfig.for_model(base, **values)
    model_class = pruned_class(name)
    with torch.device("meta"):
        stock = model_class(config)
    names = [site.name for site in find_mlp_sites(stock)]
    if len(names) != len(widths):
        raise CheckpointError(f"config has {len(widths)} MLP widths, the model {len(names)} MLPs")
    config.mlp_widths = dict(zip(names, widths))
    config.mlp_layout = mlp_records(stock)[1]
    config.architectures = [name]
    return config, model_class


def load_hf(folder: Path, where: str, **kwargs: Any) -> nn.Module:
    """A transformers checkpoint with its weights; refuses any weight left uninitialised.

    ``kwargs`` go to the config where it has them (``num_labels=5``, ...), the rest to
    ``from_pretrained``; with ``ignore_mismatched_sizes=True`` a head of another size is
    newly initialised, as transformers does.

    Raises:
        CheckpointError: weights whose shapes or names do not match the config.
    """
    config, model_class = _config_and_class(folder)
    for name in [k for k in kwargs if k == "num_labels" or hasattr(config, k)]:
        setattr(config, name, kwargs.pop(name))
    try:
        model, info = model_class.from_pretrained(
            str(folder), config=config, output_loading_info=True, **kwargs
        )
    except (RuntimeError, ValueError) as error:  # sizes; widths the model cannot take
        hint = "" if kwargs.get("ignore_mismatched_sizes") else (
            " (for a head of another size pass ignore_mismatched_sizes=True)")  # fmt: skip
        raise CheckpointError(f"{where}: weights do not match the config: {error}{hint}") from error
    accepted = {"error_msgs"} | ({"mismatched_keys"} if kwargs.get("ignore_mismatched_sizes")
                                  else set())  # fmt: skip
    problems = {k: sorted(v)[:3] for k, v in info.items() if v and k not in accepted}
    if problems:  # transformers would initialise missing weights randomly: refuse
        raise CheckpointError(f"{where}: weights do not match the model: {problems}")
    return model.eval()


def build_hf(folder: Path) -> nn.Module:
    """The architecture of a transformers checkpoint, random weights, recorded widths.

    Raises:
        CheckpointError: recorded widths the architecture cannot take.
    """
    config, model_class = _config_and_class(folder)
    try:
        return model_class(config).eval()
    except ValueError as error:  # widths that do not fit, or it is not this model
        raise CheckpointError(f"{folder}: {error}") from error
