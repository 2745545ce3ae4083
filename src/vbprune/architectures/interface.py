"""How to call a model of each backend: the input size it was built for, where its
logits are."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..core.errors import ConfigError
from .backend import model_backend


def timm_built_size(model: nn.Module) -> tuple[int, int] | None:
    """``(H, W)`` a timm model was built for (its ``img_size``), if it has one.

    A model created with another ``img_size`` keeps its name's pretrained_cfg, whose
    ``input_size`` (and so ``timm.data.resolve_model_data_config``) is then wrong: this
    size is the one to trust. Read off the patch embedding, which checks its inputs
    against it, else timm's record of the model (``timm.models.get_model_traits``,
    kept current by ``set_input_size``); ``None`` for a model that takes no
    ``img_size`` (ConvNeXt, PVTv2, ...).
    """
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is None:
        from timm.models import get_model_traits

        size = get_model_traits(model).get("img_size")
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else tuple(int(s) for s in size)


def _timm_input_size(model: nn.Module) -> tuple[int, int, int]:
    from timm.models import get_model_input_config

    config = get_model_input_config(model)  # the model's own traits, not its source's
    channels, *size = config["input_size"]
    built_for = timm_built_size(model)  # a model built by its class has no traits
    first_conv = config.get("first_conv")
    if isinstance(first_conv, str):  # the stem itself (a feature wrapper renames it)
        channels = getattr(_submodule(model, first_conv), "in_channels", channels)
    return (int(channels), *(built_for or (int(s) for s in size)))


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input image of ``model``: the size it was built for (for
    MACs, latency and calibration inputs).

    Args:
        model: A timm model (also one built through vbprune's ``vbprune_pruned`` entry,
            or wrapped by ``features_only``), a transformers model, or transformers'
            ``TimmWrapper`` of a timm model.

    Returns:
        timm: the model's current input config, ``timm.models.get_model_input_config``
        (the ``img_size`` and ``in_chans`` it was created with, or resized to by
        ``set_input_size``; its pretrained_cfg's size, e.g. 224 px, for a model that
        takes no ``img_size`` such as ConvNeXt or PVTv2), checked against the patch
        embedding and the stem's input channels. Not ``resolve_model_data_config``,
        which keeps the pretrained_cfg's size of a model built at another one.
        transformers: ``config.num_channels`` and ``config.image_size`` (those of
        ``config.vision_config`` for CLIP and SigLIP classifiers; 3 and 224 where the
        config has none).

    Raises:
        ConfigError: for a model of neither library (pass the size yourself).
    """
    backend = model_backend(model)
    if backend == "timm":
        return _timm_input_size(model)
    wrapped = getattr(model, "timm_model", None)  # transformers' TimmWrapper
    if backend == "transformers" and model_backend(wrapped) == "timm":
        return _timm_input_size(wrapped)
    config = getattr(model, "config", None)
    if config is None:
        raise ConfigError(
            f"cannot tell the input size of a {type(model).__name__} (neither a timm nor "
            "a transformers model): pass input_size=(C, H, W)"
        )
    # a two-tower classifier (CLIP, SigLIP) keeps the image size in its vision config
    vision = getattr(config, "vision_config", None)
    size = getattr(config, "image_size", None) or getattr(vision, "image_size", None) or 224
    size = (size, size) if isinstance(size, int) else tuple(size)
    channels = getattr(config, "num_channels", None) or getattr(vision, "num_channels", None)
    return (channels or 3, *size)


def num_classes(model: nn.Module) -> int | None:
    """How many classes ``model``'s head predicts (``None``: unknown, or no head)."""
    inner = getattr(model, "model", model)  # the Trainer's wrapper of a timm model
    if hasattr(inner, "num_classes"):
        return int(inner.num_classes) or None
    return getattr(getattr(inner, "config", None), "num_labels", None)


def class_names(model: nn.Module) -> list[str] | None:
    """The name of each class ``model`` predicts, by index, when it knows them: a
    transformers config's ``id2label`` (not the ``LABEL_0``, ... placeholders), timm's
    ``label_names`` (list, or dict by index); ``None`` otherwise."""
    import re

    inner = getattr(model, "model", model)  # the Trainer's wrapper of a timm model
    count = num_classes(model)
    config = getattr(inner, "config", None)
    id2label = getattr(config, "id2label", None) if config is not None else None
    names: Any = None
    if isinstance(id2label, dict) and id2label:
        names = {int(k): str(v) for k, v in id2label.items()}
        if all(re.fullmatch(r"LABEL_\d+", v) for v in names.values()):
            names = None  # transformers' placeholders: no names
    if names is None:
        names = (getattr(inner, "pretrained_cfg", None) or {}).get("label_names")
    if isinstance(names, dict):
        names = [str(names.get(i, names.get(str(i), ""))) for i in range(len(names))]
    if not names or (count is not None and len(names) != count) or "" in names:
        return None
    return [str(name) for name in names]


def logits_of(output: Any) -> Any:
    """The logits of a model output (timm: the tensor; transformers: ``.logits``)."""
    return output if not hasattr(output, "logits") else output.logits
