"""timm checkpoints: timm's own format (``config.json``, ``model.safetensors``) plus the
``vbprune`` section, rebuilt at load as: create the base architecture, resize the
recorded MLPs, load the weights strictly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..architectures import find_mlp_sites
from ..architectures.finder import find_attention_sites_and_problems
from ..architectures.widths import apply_heads, apply_widths
from ..core.errors import CheckpointError
from .metadata import SECTION, check_section
from .timm_entry import ENTRY, ENTRY_ARGS, checkpoint_filter, entry_model_args, register
from .weights import read_weights, shape_differences

# what timm records of a model that only describes vbprune's entry, not the base model
_NOT_ARCHITECTURE = (*ENTRY_ARGS, "pretrained_model_args")
# current traits, read off the model by timm (reset_classifier, set_input_size)
_CURRENT = ("num_classes", "img_size", "in_chans", "global_pool")


def _is_drop_rate(key: str) -> bool:
    # drop rates are training settings, not architecture (timm's own saves omit them)
    return "drop" in key and key.endswith("rate")


def _model_args(model: nn.Module, model_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``timm.create_model`` arguments that rebuild ``model``'s architecture.

    ``model_args`` if given; else what vbprune's loading recorded (``vbprune_model_args``,
    set by :func:`build_timm` and by the ``vbprune_pruned`` entry), else timm's own record
    (``timm.models.get_model_args``: the ``create_model`` keywords, those of a
    ``local-dir:``/``hf-hub:`` checkpoint's config included); in both cases updated with
    the model's current traits (``num_classes`` after ``reset_classifier``, ``img_size``
    after ``set_input_size``, ``global_pool``) and without drop rates.

    Raises:
        CheckpointError: an argument that JSON cannot hold (e.g. a layer class).
    """
    from timm.models import get_model_args

    if model_args is not None:
        args = dict(model_args)
    else:
        current = get_model_args(model)  # timm's record, current traits applied
        recorded = getattr(model, "vbprune_model_args", None)
        if recorded is None:
            recorded = current
        args = {**recorded, **{k: current[k] for k in _CURRENT if k in current}}
        args = {
            k: v for k, v in args.items() if not _is_drop_rate(k) and k not in _NOT_ARCHITECTURE
        }
    for key, value in args.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"cannot save {architecture(model)}: its argument {key}={value!r} cannot be "
                f"written to config.json ({error}); pass model_args= with a JSON value for "
                f"{key} (e.g. a name), or without {key} if the default builds the same model"
            ) from error
    return args


def save_timm(
    model: nn.Module, directory: Path, section: dict, model_args: Mapping[str, Any] | None
) -> None:
    """Write ``model`` in timm's format with ``section`` (and the timm arguments that
    rebuild it) in its config.

    Raises:
        CheckpointError: if the model has no timm name, or does not rebuild from the args.
    """
    from timm.models import save_for_hf

    if not getattr(model, "pretrained_cfg", None):
        raise CheckpointError(
            f"cannot save this {type(model).__name__}: it has no timm pretrained_cfg naming "
            "its architecture; build it with timm.create_model(name, ...)"
        )
    args = _model_args(model, model_args)
    heads = _check_rebuilds(model, args, section["widths"])
    section = {**section, "model_args": args}
    if heads:
        section["heads"] = heads
    # timm builds it through vbprune's entry (timm.create_model("local-dir:..."));
    # the base architecture and its arguments stay in the vbprune section too
    fc2_bias = [s.name for s in find_mlp_sites(model) if s.fc2.bias is not None]
    proj_bias = [s.name for s in _attention_sites(model) if s.proj.bias is not None]
    entry_args = entry_model_args(
        architecture(model), section["widths"], fc2_bias, args, heads, proj_bias
    )
    try:
        save_for_hf(
            model, str(directory), model_config={SECTION: section, "architecture": ENTRY},
            model_args=entry_args, safe_serialization=True,
        )  # fmt: skip
    except ValueError as error:  # timm's own check of the arguments it records
        if "argument" not in str(error):
            raise
        raise CheckpointError(
            f"cannot save {architecture(model)}: {error} (pass it in model_args=)"
        ) from error


def architecture(model: nn.Module) -> str:
    """The timm architecture a model was built from (the base one, for a model timm built
    through vbprune's entry)."""
    return getattr(model, "vbprune_base_architecture", None) or model.pretrained_cfg["architecture"]


def _attention_sites(model: nn.Module) -> list:
    return find_attention_sites_and_problems(model)[0]


def _check_rebuilds(
    model: nn.Module, args: Mapping[str, Any], widths: Mapping[str, int]
) -> dict[str, int]:
    """Refuse to write a timm checkpoint that would not load: rebuild it (on the meta
    device, no memory) from the recorded name, args and widths (and heads) and compare
    every shape.

    Returns:
        The heads of every prunable attention module when some lost heads (what the
        checkpoint records), else ``{}``.
    """
    import timm

    name = architecture(model)
    try:
        with torch.device("meta"):
            rebuilt = timm.create_model(name, pretrained=False, **args)
            apply_widths(rebuilt, widths)
            heads = {site.name: site.num_heads for site in _attention_sites(model)}
            built = {site.name: site.num_heads for site in _attention_sites(rebuilt)}
            heads = heads if heads != built else {}
            apply_heads(rebuilt, heads)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"cannot save {name}: it does not rebuild from model_args={dict(args)} ({error}); "
            "pass the model_args it was created with"
        ) from error

    # fc2 and projection biases may have been created by the fold: not compared
    fold_biases = {f"{site.paths['fc2']}.bias" for site in find_mlp_sites(model)}
    fold_biases |= {f"{site.name}.{site.spec['proj']}.bias" for site in _attention_sites(model)}

    def shapes(state):
        return {k: tuple(v.shape) for k, v in state.items() if k not in fold_biases}

    rebuilt_shapes, saved_shapes = shapes(rebuilt.state_dict()), shapes(model.state_dict())
    differing = shape_differences(rebuilt_shapes, saved_shapes)
    if differing:

        def shape(value):
            return "missing" if value is None else str(value)

        details = "; ".join(
            f"{k}: {shape(saved_shapes.get(k))} here, {shape(rebuilt_shapes.get(k))} rebuilt"
            for k in differing
        )
        raise CheckpointError(
            f"cannot save {name}: model_args={dict(args)} rebuild a different architecture "
            f"({details}); pass the model_args it was created with: "
            "save_pretrained(model, path, model_args={...})"
        )
    return heads


# what timm raises for model arguments an architecture refuses (embed_dim not divisible
# by num_heads, ...)
UNBUILDABLE = (AssertionError, ValueError, KeyError, IndexError, ZeroDivisionError)


def unbuildable(folder: str | Path, error: BaseException, architecture: str) -> CheckpointError:
    """The error of a saved folder whose ``config.json`` arguments cannot build it."""
    return CheckpointError(
        f"{Path(folder) / 'config.json'}: its model arguments cannot build {architecture} "
        f"({str(error) or type(error).__name__}); the file was edited or is of another model"
    )


def build_timm(
    folder: Path, config: dict[str, Any], **overrides: Any
) -> tuple[nn.Module, dict | None]:
    """The base timm architecture of a saved model and its upgraded ``vbprune`` section
    (``None`` for a plain timm checkpoint); not yet resized nor loaded. ``overrides``
    replace recorded ``timm.create_model`` arguments.

    Raises:
        CheckpointError: for an unknown timm architecture or argument.
        ConfigError: for ``features_only`` (not supported yet).
    """
    import timm

    if overrides.get("features_only"):  # a checkpoint older than timm-native loading
        from ..core.errors import ConfigError

        raise ConfigError(
            f"{folder} was saved before vbprune 0.3: features_only needs it saved again "
            "(vbprune.save_pretrained(vbprune.from_pretrained(path), new_path)); or use "
            "model.forward_intermediates(x)"
        )
    section = config.get(SECTION)
    recorded = dict(config.get("model_args", {}))
    architecture = config["architecture"]
    if architecture == ENTRY:  # 0.3: timm's own loading goes through vbprune's entry
        architecture = recorded.get("base_architecture", architecture)
        recorded = {k: v for k, v in recorded.items() if k not in ENTRY_ARGS}
    model_args = (section or {}).get("model_args", recorded)
    model_args = {**model_args, **overrides}
    try:
        model = timm.create_model(architecture, pretrained=False, **model_args)
    except (RuntimeError, TypeError) as error:  # unknown model name, unknown argument
        raise CheckpointError(f"{folder}: unknown timm architecture: {error}") from error
    except UNBUILDABLE as error:
        raise unbuildable(folder, error, architecture) from error
    if section is not None:  # warned of once the architecture is known to build
        section = check_section(section, str(folder), stacklevel=5)  # the user's call
    model.pretrained_cfg = {**model.pretrained_cfg, **config.get("pretrained_cfg", {})}
    if config.get("label_names"):  # timm keeps the class names at the top (load_cfg_from_json)
        model.pretrained_cfg["label_names"] = config["label_names"]
    model.vbprune_model_args = model_args
    model.vbprune_base_architecture = architecture
    model.vbprune_metadata = dict(section or {})
    return model, section


def load_timm(folder: Path, config: dict[str, Any], weights: Path, **overrides: Any) -> nn.Module:
    """A timm checkpoint with its weights, at its recorded widths and precision.

    ``overrides`` are ``timm.create_model`` arguments. A ``num_classes`` other than the
    saved one gets timm's freshly initialised head (``num_classes=0``: none); every other
    weight is loaded.

    Raises:
        CheckpointError: weights whose shapes do not match the recorded widths.
    """
    if overrides.get("features_only") and config.get("architecture") == ENTRY:
        import timm  # a feature extractor: timm's own wrapping, through vbprune's entry

        register()
        return timm.create_model(f"local-dir:{folder}", pretrained=True, **overrides).eval()
    model, section = build_timm(folder, config, **overrides)
    state = read_weights(weights)
    saved_args = (section or {}).get("model_args", config.get("model_args", {}))
    new_head = "num_classes" in overrides and overrides["num_classes"] != saved_args.get(
        "num_classes", config.get("num_classes", model.pretrained_cfg.get("num_classes"))
    )
    if new_head:  # the saved head does not fit (timm drops it too when it loads weights)
        state = _without_head(state, model)
    # A checkpoint saved in bf16/fp16 loads in that precision, not upcast to float32.
    floating = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(floating) == 1:
        model = model.to(floating.pop())
    if section is not None:
        shapes = {key: tuple(t.shape) for key, t in state.items()}
        apply_widths(model, section["widths"], shapes, str(folder))
        heads = section.get("heads") or {}
        bias = {site.name: f"{site.name}.{site.spec['proj']}.bias" in state
                for site in _attention_sites(model) if site.name in heads}  # fmt: skip
        apply_heads(model, heads, bias, str(folder))
    filter_fn = checkpoint_filter(model.vbprune_base_architecture)
    if overrides and filter_fn is not None:  # e.g. img_size=: position embeddings resampled
        state = filter_fn(state, model)  # as timm's own loading does
    head = {}
    if new_head:  # only then: a checkpoint that lacks its head is an error, not a new head
        head = {k: v for k, v in model.state_dict().items() if _in_head(k, model)}
    try:
        model.load_state_dict({**state, **head}, strict=True)  # the new head as built
    except RuntimeError as error:
        raise CheckpointError(
            f"{folder}: weights do not match the recorded widths: {error}"
        ) from error
    return model.eval()


def _head_names(model: nn.Module) -> tuple[str, ...]:
    classifier = model.pretrained_cfg.get("classifier") or "head"
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _in_head(key: str, model: nn.Module) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in _head_names(model))


def _without_head(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` without the classifier's tensors (``pretrained_cfg["classifier"]``)."""
    return {key: value for key, value in state.items() if not _in_head(key, model)}
