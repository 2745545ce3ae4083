"""Load the models vbprune works on, from a short spec: ``timm:NAME``, ``hf:ID`` or a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from .architectures import is_timm_model

MODEL_SPEC_HELP = (
    "timm:NAME (a timm model, e.g. timm:deit_small_patch16_224), hf:ID (a transformers "
    "model on the Hub, e.g. hf:facebook/deit-small-patch16-224), or a local folder saved "
    "by timm or transformers"
)


def load_model(spec: str, pretrained: bool = True) -> nn.Module:
    """Build or load a model from a spec (see ``MODEL_SPEC_HELP``), in eval mode.

    Args:
        spec: ``timm:NAME``, ``hf:ID`` or a local folder with a ``config.json``.
        pretrained: Load the weights (``False``: architecture only, random weights).

    Raises:
        ValueError: for a spec of none of these forms.
        FileNotFoundError: for a folder without ``config.json``.
    """
    if spec.startswith("timm:"):
        import timm

        model = timm.create_model(spec[len("timm:") :], pretrained=pretrained)
        model.vbprune_model_args = {}  # what save_pretrained records to rebuild it
        return model.eval()
    if spec.startswith("hf:"):
        return _load_hf(spec[len("hf:") :], pretrained)
    path = Path(spec).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a saved model")
        config = json.loads(config_path.read_text())
        pruned = "vbprune" in config or str(config.get("model_type", "")).startswith("vbprune_")
        if pruned:  # built at its recorded widths, with or without its weights
            from .checkpoint import build_architecture, from_pretrained

            return from_pretrained(path) if pretrained else build_architecture(path)
        if "architecture" in config:  # timm's own format
            import timm

            model = timm.create_model(f"local-dir:{path}", pretrained=pretrained)
            model.vbprune_model_args = config.get("model_args", {})
            return model.eval()
        return _load_hf(str(path), pretrained)
    raise ValueError(f"cannot load model {spec!r}: expected {MODEL_SPEC_HELP}")


def _load_hf(name: str, pretrained: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModelForImageClassification

    if pretrained:
        return AutoModelForImageClassification.from_pretrained(name).eval()
    config = AutoConfig.from_pretrained(name)
    model = AutoModelForImageClassification.from_config(config)
    model.config._name_or_path = name  # keeps the image processor findable
    return model.eval()


def is_local_path(spec: str) -> bool:
    """True when ``spec`` names a local path rather than a Hub id (``name`` or ``owner/name``)."""
    return (
        os.path.exists(spec)
        or spec.startswith(("/", ".", "~"))
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def timm_built_size(model: nn.Module) -> tuple[int, int] | None:
    """``(H, W)`` a timm model's patch embedding was built for, if it has one.

    A model created with another ``img_size`` keeps its name's pretrained_cfg, whose
    ``input_size`` is then wrong: this size is the one to trust.
    """
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    return tuple(size) if size is not None else None


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input image of ``model`` (for MACs and latency)."""
    if is_timm_model(model):
        built_for = timm_built_size(model)
        if built_for is not None:
            return (model.patch_embed.proj.in_channels, *built_for)
        import timm.data

        return tuple(timm.data.resolve_model_data_config(model)["input_size"])
    config = model.config
    size = getattr(config, "image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (getattr(config, "num_channels", 3), *size)


def logits_of(output) -> object:
    """The logits of a model output (timm: the tensor; transformers: ``.logits``)."""
    return output if not hasattr(output, "logits") else output.logits
