"""Save and load pruned models: safetensors weights plus every MLP's width in the config.

transformers models are saved as the pruned subclass of their family
(:mod:`vbprune.io.hf_format`), so stock transformers loads them with
``trust_remote_code=True``. timm models are saved in timm's format with a ``vbprune``
section (:mod:`vbprune.io.timm_format`) and load back through :func:`from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..architectures import model_backend
from ..architectures.widths import apply_heads, apply_widths
from ..core.errors import HubError, MissingInputError, UnsupportedModelError
from .folders import (
    atomic_directory,
    is_local_path,
    is_timm_config,
    model_folder,
    read_model_config,
)
from .hf_format import build_hf, check_hf_config, load_hf, save_hf
from .metadata import loaded_metadata, merge_sections, pruning_metadata
from .model_card import write_model_card
from .timm_format import build_timm, load_timm, save_timm
from .weights import HF_WEIGHT_FILES, weights_file


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    metadata: Mapping[str, Any] | None = None,
    model_args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    location: str | Path | None = None,
) -> Path:
    """Write a (pruned) model to ``directory``, created atomically; safetensors only.

    Args:
        model: A supported timm or transformers model, pruned or not.
        directory: Output folder (must be empty or absent unless ``overwrite``).
        metadata: Extra entries of the config's ``vbprune`` section (base_model,
            pruning, report, ...; see :mod:`vbprune.io.metadata`).
        model_args: timm only: the ``timm.create_model`` keyword arguments that rebuild
            the base architecture (JSON values; tuples are fine). Default: recovered from
            the model: what vbprune's loading recorded, else timm's record of its
            creation (``timm.models.get_model_args``: the ``create_model`` keywords, those
            of a ``local-dir:``/``hf-hub:`` checkpoint's config included), updated with
            its current ``num_classes`` (``reset_classifier``), ``img_size``
            (``set_input_size``) and ``global_pool``; drop rates are left out (training
            settings). Needed only for a model changed by hand after creation, or
            created with an argument JSON cannot hold (e.g. a layer class: give its
            name). Either way the model is rebuilt on the meta device: other shapes are a
            ``CheckpointError`` naming the parameters with both shapes, and so is an
            argument JSON cannot hold, naming it.
        overwrite: Replace a non-empty ``directory``.
        location: Where the folder will be loaded from, for the model card's loading
            code (default ``directory``; a command writing into a temporary folder gives
            its final place).

    Returns:
        The folder written, with a model card (``README.md``).

    Raises:
        OutputExistsError: ``directory`` is not empty and ``overwrite`` is not set.
        CheckpointError: a model that would not load back as saved.
        UnsupportedModelError: a model of neither timm nor transformers.
    """
    backend = model_backend(model)
    if backend is None:
        raise UnsupportedModelError(
            f"cannot save {type(model).__name__}: neither a timm nor a transformers model"
        )
    # A model loaded from a checkpoint keeps what it was saved with (pruning, report, ...);
    # new metadata wins, widths and version are always the current ones.
    section = merge_sections(loaded_metadata(model), metadata or {})
    for key in ("widths", "heads", "library_version"):
        section.pop(key, None)
    section = pruning_metadata(model, **section)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        if backend == "timm":
            save_timm(model, tmp, section, model_args)
        else:
            save_hf(model, tmp, section)
        # the card's loading code names the folder where it will be loaded from
        write_model_card(tmp, str(location or directory), local=True)
    return Path(directory)


def _read_config(path_or_id: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    local = Path(path_or_id).expanduser()
    if local.is_dir():  # a model folder, or a prune / distill output holding one in model/
        folder = model_folder(local) or local
    elif is_local_path(path_or_id):
        raise MissingInputError(f"model folder not found: {path_or_id}")
    else:
        folder = _download(path_or_id, revision)
    return folder, read_model_config(folder, path_or_id)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    missing = (HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError,
               RevisionNotFoundError)  # fmt: skip
    from .online import OFFLINE_HINT, hub_offline

    offline = hub_offline()  # when the Hub cannot be reached: the cache only, at once
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except OfflineModeIsEnabled as error:
        raise MissingInputError(f"cannot download {repo_id!r}: {OFFLINE_HINT}") from error
    except missing as error:  # a bad id, no such repo or revision, offline and not cached
        if offline:
            raise MissingInputError(
                f"{repo_id!r} is not a local folder, and {OFFLINE_HINT}"
            ) from error
        raise MissingInputError(
            f"{repo_id!r} is neither a local folder nor a model on the Hub: {error}"
        ) from error
    except HfHubHTTPError as error:  # no access, server trouble
        raise HubError(f"cannot download {repo_id!r} from the Hub: {error}") from error


def from_pretrained(
    path_or_repo_id: str | Path, revision: str | None = None, **model_kwargs: Any
) -> nn.Module:
    """Load a pruned (or plain) model saved by :func:`save_pretrained`, in eval mode.

    Args:
        path_or_repo_id: A local folder (a saved model, or a ``vbprune prune`` /
            ``distill`` output: its ``model/``) or a Hub repo id.
        revision: Branch, tag or commit on the Hub.
        **model_kwargs: What the library's own loading takes. A timm model's
            ``timm.create_model`` arguments, e.g. ``num_classes=5`` (a new, freshly
            initialised head; every other weight loaded) or ``drop_path_rate=0.1``. A
            transformers model's ``from_pretrained`` and config arguments, e.g.
            ``num_labels=5, ignore_mismatched_sizes=True``.

    Example:
        >>> model = vbprune.from_pretrained("deit_s_vbp50", num_classes=10)  # fine-tune

    Raises:
        MissingInputError: (a ``FileNotFoundError``) no folder, no ``config.json`` or no
            weights (``model.safetensors``, or timm's ``pytorch_model.bin``).
        CheckpointError: (a ``ValueError``) weights whose shapes do not match the
            recorded widths (or a new head without ``ignore_mismatched_sizes``), or a
            config of a family vbprune does not know.
    """
    folder, config = _read_config(str(path_or_repo_id), revision)
    if is_timm_config(config):  # timm's format
        return load_timm(folder, config, weights_file(folder, path_or_repo_id), **model_kwargs)
    check_hf_config(config, str(path_or_repo_id))
    weights_file(folder, path_or_repo_id, HF_WEIGHT_FILES)  # transformers reads them itself
    return load_hf(folder, str(path_or_repo_id), **model_kwargs)


def build_architecture(path_or_repo_id: str | Path, revision: str | None = None) -> nn.Module:
    """The architecture of a model saved by :func:`save_pretrained`, with random weights.

    A pruned model is built with its recorded MLP widths (and heads), so its shapes,
    parameter count and MACs are those of the saved model (output-projection biases made
    by the fold aside); no weights are read (for sizing and latency).

    Raises:
        MissingInputError: no ``config.json``.
        CheckpointError: a config of a family vbprune does not know, or widths it cannot
            have.
    """
    folder, config = _read_config(str(path_or_repo_id), revision)
    if is_timm_config(config):  # timm's format
        model, section = build_timm(folder, config)
        if section is not None:
            apply_widths(model, section["widths"], where=str(folder))
            apply_heads(model, section.get("heads") or {}, where=str(folder))
        return model.eval()
    check_hf_config(config, str(path_or_repo_id))
    return build_hf(folder)
