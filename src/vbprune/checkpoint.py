"""Save and load pruned models: safetensors weights plus every MLP's width in the config.

transformers models are saved as the pruned subclass of their family
(:mod:`vbprune.hf_remote`) with ``auto_map``, so stock transformers loads them with
``trust_remote_code=True``. timm models are saved in timm's format (``config.json`` with a
``vbprune`` section, ``model.safetensors``) and load back through :func:`from_pretrained`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .architectures import find_mlp_sites, is_timm_model
from .models import is_local_path
from .outputs import atomic_directory
from .surgery import shrink_mlp

SECTION = "vbprune"
# Keys of the vbprune section this version writes; others (a newer version) are warned of.
KNOWN_KEYS = {
    "library_version", "hidden_sizes", "base_model", "model_args", "ratio", "scope",
    "round_to", "min_keep", "compensate", "report", "speedup",
}  # fmt: skip


def pruning_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The ``vbprune`` section of a saved config: library version and width per MLP."""
    from . import __version__

    widths = {site.name: site.hidden_size for site in find_mlp_sites(model)}
    return {"library_version": __version__, "hidden_sizes": widths, **extra}


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    metadata: Mapping[str, Any] | None = None,
    model_args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a (pruned) model to ``directory``, created atomically; safetensors only.

    Args:
        model: A supported timm or transformers model, pruned or not.
        directory: Output folder (must be empty or absent unless ``overwrite``).
        metadata: Extra entries of the config's ``vbprune`` section (base_model, ratio,
            scope, report, ...).
        model_args: timm only: the keyword arguments the base architecture was created
            with (default: what :func:`vbprune.models.load_model` recorded, else
            ``num_classes`` and ``img_size`` read off the model).
        overwrite: Replace a non-empty ``directory``.

    Returns:
        The folder written, with a model card (``README.md``).
    """
    from .hub import write_model_card

    # A model loaded from a checkpoint keeps what it was saved with (ratio, report, ...);
    # new metadata wins, widths and version are always the current ones.
    previous = dict(loaded_metadata(model))
    for key in ("hidden_sizes", "library_version"):
        previous.pop(key, None)
    section = pruning_metadata(model, **{**previous, **dict(metadata or {})})
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        if is_timm_model(model):
            _save_timm(model, tmp, section, model_args)
        else:
            _save_hf(model, tmp, section)
        write_model_card(tmp, Path(directory).name)
    return Path(directory)


def loaded_metadata(model: nn.Module) -> Mapping[str, Any]:
    """The ``vbprune`` section a model was loaded with by :func:`from_pretrained` ({} if none)."""
    section = getattr(model, "vbprune_metadata", None)  # timm, set by from_pretrained
    if section is None:
        section = getattr(getattr(model, "config", None), SECTION, None)  # transformers
    return section if isinstance(section, Mapping) else {}


def _timm_model_args(model: nn.Module, model_args: Mapping[str, Any] | None) -> dict[str, Any]:
    if model_args is not None:
        return dict(model_args)
    recorded = getattr(model, "vbprune_model_args", None)
    if recorded is not None:
        return dict(recorded)
    args: dict[str, Any] = {"num_classes": model.num_classes}
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        args["img_size"] = list(img_size)
    return args


def _save_timm(model, directory: Path, section: dict, model_args) -> None:
    from timm.models import save_for_hf

    if not getattr(model, "pretrained_cfg", None):
        raise ValueError(
            f"cannot save this {type(model).__name__}: it has no timm pretrained_cfg naming "
            "its architecture; build it with timm.create_model(name, ...)"
        )
    args = _timm_model_args(model, model_args)
    _check_rebuilds(model, args, section["hidden_sizes"])
    section = {**section, "model_args": args}
    save_for_hf(
        model, str(directory), model_config={SECTION: section}, model_args=args,
        safe_serialization=True,
    )  # fmt: skip


def _check_rebuilds(model: nn.Module, args: Mapping[str, Any], widths: Mapping[str, int]) -> None:
    """Refuse to write a timm checkpoint that would not load: rebuild it (on the meta
    device, no memory) from the recorded name, args and widths and compare every shape."""
    import timm

    name = model.pretrained_cfg["architecture"]
    try:
        with torch.device("meta"):
            rebuilt = timm.create_model(name, pretrained=False, **args)
            apply_widths(rebuilt, widths)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"cannot save {name}: it does not rebuild from model_args={dict(args)} ({error}); "
            "pass the model_args it was created with"
        ) from error

    def shapes(state):  # fc2 biases may have been created by the fold: not compared
        return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("fc2.bias")}

    differing = shape_differences(shapes(rebuilt.state_dict()), shapes(model.state_dict()))
    if differing:
        raise ValueError(
            f"cannot save {name}: model_args={dict(args)} rebuild a different architecture "
            f"(e.g. {differing}); pass the model_args it was created with"
        )


def shape_differences(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], most: int = 3
) -> list[str]:
    """Up to ``most`` tensor names whose shapes differ or that only one side has."""
    keys = expected.keys() | found.keys()
    return sorted(k for k in keys if expected.get(k) != found.get(k))[:most]


def _save_hf(model, directory: Path, section: dict) -> None:
    from .hf_remote.modeling_vbprune import PRUNED_CLASSES

    stock = next((c.__name__ for c in type(model).__mro__ if c.__name__ in PRUNED_CLASSES), None)
    if stock is None:
        raise ValueError(
            f"cannot save {type(model).__name__}: pruned transformers models are saved as "
            f"one of {sorted(PRUNED_CLASSES)}"
        )
    config_class, model_class = PRUNED_CLASSES[stock]
    values = model.config.to_dict()
    stale = ("model_type", "architectures", "auto_map", "transformers_version", "mlp_hidden_sizes")
    for key in (*stale, SECTION):
        values.pop(key, None)
    config = config_class(**values, mlp_hidden_sizes=list(section["hidden_sizes"].values()))
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


def _read_config(path_or_id: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    local = Path(path_or_id).expanduser()
    if local.is_dir():
        folder = local
    elif is_local_path(path_or_id):
        raise FileNotFoundError(f"model folder not found: {path_or_id}")
    else:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(path_or_id, revision=revision))
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{path_or_id} has no config.json: not a saved model")
    return folder, json.loads(config_path.read_text())


def _check_section(section: Mapping[str, Any], where: str, stacklevel: int = 4) -> None:
    unknown = sorted(set(section) - KNOWN_KEYS)
    if unknown:
        warnings.warn(
            f"{where}: ignoring vbprune config keys {unknown} (written by a newer vbprune?)",
            stacklevel=stacklevel,
        )
    if not isinstance(section.get("hidden_sizes"), Mapping):
        raise ValueError(f"{where}: the vbprune section has no hidden_sizes")


def _check_hf_config(config: Mapping[str, Any], where: str) -> None:
    from .hf_remote.layouts import MLP_LAYOUTS, base_model_type

    family = base_model_type(config.get("model_type"))
    if family not in MLP_LAYOUTS:
        raise ValueError(
            f"{where}: unknown model family {config.get('model_type')!r}; "
            f"vbprune knows {sorted(MLP_LAYOUTS)}"
        )
    if SECTION in config:
        _check_section(config[SECTION], where)


def from_pretrained(path_or_repo_id: str | Path, revision: str | None = None) -> nn.Module:
    """Load a pruned (or plain) model saved by :func:`save_pretrained`, in eval mode.

    Args:
        path_or_repo_id: A local folder or a Hub repo id.
        revision: Branch, tag or commit on the Hub.

    Raises:
        FileNotFoundError: no ``config.json`` or no ``model.safetensors``.
        ValueError: weights whose shapes do not match the recorded widths, or a config
            of a family vbprune does not know.
    """
    folder, config = _read_config(str(path_or_repo_id), revision)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{path_or_repo_id} has no model.safetensors")
    if "architecture" in config:  # timm's format
        return _load_timm(folder, config, weights)
    from transformers import AutoModelForImageClassification

    _check_hf_config(config, str(path_or_repo_id))
    try:
        model, info = AutoModelForImageClassification.from_pretrained(
            str(folder), output_loading_info=True
        )
    except RuntimeError as error:  # size mismatch in load_state_dict
        raise ValueError(f"{path_or_repo_id}: weights do not match the config: {error}") from error
    problems = {k: sorted(v)[:3] for k, v in info.items() if v and k != "error_msgs"}
    if problems:  # transformers would initialise missing weights randomly: refuse
        raise ValueError(f"{path_or_repo_id}: weights do not match the model: {problems}")
    return model.eval()


def build_architecture(path_or_repo_id: str | Path, revision: str | None = None) -> nn.Module:
    """The architecture of a model saved by :func:`save_pretrained`, with random weights.

    A pruned model is built with its recorded MLP widths, so its shapes, parameter count
    and MACs are those of the saved model; no weights are read (for sizing and latency).

    Raises:
        FileNotFoundError: no ``config.json``.
        ValueError: a config of a family vbprune does not know, or widths it cannot have.
    """
    folder, config = _read_config(str(path_or_repo_id), revision)
    if "architecture" in config:  # timm's format
        model, section = _build_timm(folder, config)
        if section is not None:
            apply_widths(model, section["hidden_sizes"], where=str(folder))
        return model.eval()
    from transformers import AutoConfig, AutoModelForImageClassification

    _check_hf_config(config, str(path_or_repo_id))
    # a vbprune_* config carries every MLP width: the pruned class is built at those sizes
    hf_config = AutoConfig.from_pretrained(str(folder))
    return AutoModelForImageClassification.from_config(hf_config).eval()


def _build_timm(folder: Path, config: dict[str, Any]) -> tuple[nn.Module, dict | None]:
    """The base timm architecture of a saved model, not yet resized nor loaded."""
    import timm

    section = config.get(SECTION)
    model_args = (section or {}).get("model_args", config.get("model_args", {}))
    try:
        model = timm.create_model(config["architecture"], pretrained=False, **model_args)
    except (RuntimeError, TypeError) as error:  # unknown model name, unknown argument
        raise ValueError(f"{folder}: unknown timm architecture: {error}") from error
    if section is not None:
        _check_section(section, str(folder), stacklevel=5)  # the caller of from_pretrained
    model.pretrained_cfg = {**model.pretrained_cfg, **config.get("pretrained_cfg", {})}
    model.vbprune_model_args = model_args
    model.vbprune_metadata = dict(section or {})
    return model, section


def _load_timm(folder: Path, config: dict[str, Any], weights: Path) -> nn.Module:
    from safetensors.torch import load_file

    model, section = _build_timm(folder, config)
    state = load_file(str(weights))
    # A checkpoint saved in bf16/fp16 loads in that precision, not upcast to float32.
    floating = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(floating) == 1:
        model = model.to(floating.pop())
    if section is not None:
        shapes = {key: tuple(t.shape) for key, t in state.items()}
        apply_widths(model, section["hidden_sizes"], shapes, str(folder))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{folder}: weights do not match the recorded widths: {error}") from error
    return model.eval()


def apply_widths(
    model: nn.Module,
    widths: Mapping[str, int],
    weight_shapes: Mapping[str, tuple[int, ...]] | None = None,
    where: str = "model",
) -> None:
    """Resize every MLP of a freshly built model to ``widths`` before loading weights.

    With ``weight_shapes`` (name -> shape of the saved tensors) the widths are checked
    against the weights first, and fc2 gets a bias where the saved weights have one.
    """
    sites = {site.name: site for site in find_mlp_sites(model)}
    if set(widths) != set(sites):
        raise ValueError(
            f"{where}: recorded widths are for MLPs {sorted(set(widths) ^ set(sites))[:3]}... "
            "that this architecture does not have (or lacks)"
        )
    modules = dict(model.named_modules())
    fc_names = {id(m): n for n, m in modules.items()}
    for name, width in widths.items():
        site = sites[name]
        fc1_name, fc2_name = fc_names[id(site.fc1)], fc_names[id(site.fc2)]
        if weight_shapes is not None:
            saved = weight_shapes.get(f"{fc1_name}.weight")
            if saved is None or saved[0] != width:
                raise ValueError(
                    f"{where}: {name} is recorded with width {width}, but its weights "
                    f"{fc1_name}.weight have shape {saved}"
                )
        if not 1 <= width <= site.hidden_size:
            raise ValueError(f"{where}: width {width} of {name} is outside [1, {site.hidden_size}]")
        with torch.no_grad():
            shrink_mlp(site, torch.arange(width))  # right shapes; the values load next
            if site.fc2.bias is None and weight_shapes and f"{fc2_name}.bias" in weight_shapes:
                weight = site.fc2.weight
                site.fc2.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype))


def register_auto_classes() -> None:
    """Let ``AutoConfig`` / ``AutoModelForImageClassification`` build pruned models."""
    from transformers import AutoConfig, AutoModelForImageClassification

    from .hf_remote.modeling_vbprune import PRUNED_CLASSES

    for config_class, model_class in PRUNED_CLASSES.values():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
