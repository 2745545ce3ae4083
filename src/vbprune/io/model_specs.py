"""Load the models vbprune works on, from a short spec: ``timm:NAME``, ``hf:ID`` or a folder.

Importing this module is cheap (torch, timm and transformers load when a model does):
the command line takes ``MODEL_SPEC_HELP`` from here to answer ``--help``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import CheckpointError, ConfigError, MissingInputError, UnsupportedModelError
from .folders import is_timm_config, model_folder, read_model_config

if TYPE_CHECKING:
    from torch import nn

MODEL_SPEC_HELP = (
    "timm:NAME (a timm model, e.g. timm:deit_small_patch16_224), hf:ID (a transformers "
    "model on the Hub, e.g. hf:facebook/deit-small-patch16-224), or a local folder saved "
    "by timm or transformers"
)


def record_spec(spec: str) -> str:
    """``spec`` as a model's config should record it: a local folder as its absolute path
    (a relative one would name another folder from elsewhere), others as given."""
    path = Path(spec).expanduser()
    if not spec.startswith(("timm:", "hf:")) and path.is_dir():
        return str(path.resolve())
    return spec


def load_model(spec: str, pretrained: bool = True, seed: int = 0) -> nn.Module:
    """Build or load a model from a spec (see ``MODEL_SPEC_HELP``), in eval mode.

    Args:
        spec: ``timm:NAME``, ``hf:ID`` or a local folder with a ``config.json``.
        pretrained: Load the weights (``False``: architecture only, random weights).
        seed: With ``pretrained=False``, the seed of the random weights: the same model
            in every process and every run (the global random state is left as it was).

    Raises:
        ConfigError: (a ``ValueError``) for a spec of none of these forms.
        MissingInputError: (a ``FileNotFoundError``) for a folder without
            ``config.json``, a timm name timm does not know, or a Hub id that cannot be
            loaded.
        CheckpointError: a ``config.json`` that is not JSON.
        UnsupportedModelError: a transformers config no Auto class can build.
    """
    if not pretrained:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _load(spec, pretrained)
    return _load(spec, pretrained)


def _load(spec: str, pretrained: bool) -> nn.Module:
    if spec.startswith("timm:"):
        return _load_timm(spec[len("timm:") :], pretrained)
    if spec.startswith("hf:"):
        return _load_hf(spec[len("hf:") :], pretrained)
    path = Path(spec).expanduser()
    if path.is_dir():
        path = model_folder(path) or path  # a `vbprune prune`/`distill` output: its model/
        config = read_model_config(path)
        pruned = (
            "vbprune" in config
            or "mlp_widths" in config
            or str(config.get("model_type", "")).startswith("vbprune_")
        )
        if pruned:  # built at its recorded widths, with or without its weights
            from .checkpoint import build_architecture, from_pretrained

            return from_pretrained(path) if pretrained else build_architecture(path)
        if is_timm_config(config):  # timm's own format
            model = _load_timm(f"local-dir:{path}", pretrained)
            model.vbprune_model_args = config.get("model_args", {})
            return model
        return _load_hf(str(path), pretrained)
    raise ConfigError(f"cannot load model {spec!r}: expected {MODEL_SPEC_HELP}")


def _load_timm(name: str, pretrained: bool) -> nn.Module:
    import timm
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from .online import OFFLINE_HINT, hub_offline
    from .timm_format import UNBUILDABLE, unbuildable

    if pretrained and not name.startswith("local-dir:"):
        hub_offline()  # when the Hub cannot be reached: the cache only, at once
    folder = name.removeprefix("local-dir:") if name.startswith("local-dir:") else None
    try:
        model = timm.create_model(name, pretrained=pretrained)
    except RuntimeError as error:  # timm's "Unknown model (...)", a refused pickle
        text = str(error).strip().splitlines()[0]
        if folder is not None and "weights_only" in text:
            refused = re.search(r"Unsupported globals?: .+?(?=\. |\.$|$)", text)
            raise CheckpointError(
                f"the weights in {folder} were refused: a pickle that loads more than "
                f"tensors, and vbprune does not run its code "
                f"({refused.group(0) if refused else text}); save them as model.safetensors"
            ) from error
        if "Unknown model" not in str(error):
            raise
        raise MissingInputError(f"timm has no model {name!r} ({error})") from error
    except (*UNBUILDABLE, TypeError) as error:  # timm builds it: an unknown argument too
        if folder is None:
            raise
        raise unbuildable(folder, error, "the model") from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        raise MissingInputError(
            f"cannot download the weights of timm:{name}: {OFFLINE_HINT}; use "
            "--no-pretrained (pretrained=False) for random weights, or give a local model "
            "folder"
        ) from error
    model.vbprune_model_args = {}  # what save_pretrained records to rebuild it
    return model.eval()


def _load_hf(name: str, pretrained: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModelForImageClassification

    from .online import OFFLINE_HINT, hub_offline

    offline = not Path(name).expanduser().is_dir() and hub_offline()
    try:
        if pretrained:
            return AutoModelForImageClassification.from_pretrained(name).eval()
        config = AutoConfig.from_pretrained(name)
    except OSError as error:  # not a folder, not on the Hub, or no weights
        if offline:
            raise MissingInputError(
                f"cannot load transformers model {name!r}: {OFFLINE_HINT}; use "
                "--no-pretrained only where the config is cached, or give a local model folder"
            ) from error
        first_line = str(error).strip().splitlines()[0]  # the rest is generic advice
        raise MissingInputError(f"cannot load transformers model {name!r}: {first_line}") from error
    except ValueError as error:  # "Unrecognized model": no model_type transformers knows
        first_line = str(error).strip().splitlines()[0]  # the rest is upgrade advice
        raise UnsupportedModelError(f"transformers cannot build {name!r}: {first_line}") from error
    model = AutoModelForImageClassification.from_config(config)
    model.config._name_or_path = name  # keeps the image processor findable
    return model.eval()
