"""Push pruned models to the Hugging Face Hub (loading by repo id: vbprune.from_pretrained)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..core.errors import ConfigError, HubError, MissingInputError
from .checkpoint import save_pretrained
from .folders import model_folder, read_model_config
from .model_card import write_model_card

_EXTRA_FILES = ("report.json", "plan.json")  # from a `vbprune prune` output folder


def push_folder(
    directory: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload model pruned with vbprune",
    revision: str | None = None,
) -> str:
    """Upload a saved pruned model (or a ``vbprune prune`` output folder) to the Hub.

    The model card is rendered for ``repo_id``; ``report.json`` and ``plan.json`` of a
    prune output go along. Returns the commit URL.

    Raises:
        MissingInputError: ``directory`` holds no saved model.
        ConfigError: ``repo_id`` is not a valid repo id.
        HubError: the Hub refused the upload (token, access, server trouble).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    directory = Path(directory)
    folder = model_folder(directory)
    if folder is None:
        raise MissingInputError(f"{directory} holds no saved model (no config.json, no model/)")
    read_model_config(folder)  # a broken config.json is named here, not in a staging copy
    from .online import back_online

    back_online()  # an offline mode vbprune switched on earlier: an upload tries the Hub
    try:
        return _upload(directory, folder, HfApi(token=token), repo_id, private, token,
                       commit_message, revision)  # fmt: skip
    except HFValidationError as error:
        raise ConfigError(f"cannot push to {repo_id!r}: {error}") from error
    except HfHubHTTPError as error:
        raise HubError(f"the Hub refused the push to {repo_id!r}: {error}") from error
    except OfflineModeIsEnabled:
        raise HubError(
            f"cannot push to {repo_id!r}: offline mode is on (unset HF_HUB_OFFLINE)"
        ) from None
    except Exception as error:  # no network, a refused connection, a timeout
        if not _is_network_error(error):
            raise
        raise HubError(f"cannot reach the Hub to push to {repo_id!r}: {error}") from None


def _is_network_error(error: Exception) -> bool:
    # huggingface_hub lets its HTTP client's errors through; they are not OSErrors
    package = type(error).__module__.split(".")[0]
    return isinstance(error, OSError) or package in _NETWORK_PACKAGES


_NETWORK_PACKAGES = {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"}


def _upload(directory, folder, api, repo_id, private, token, commit_message, revision) -> str:
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging) / "upload"
        shutil.copytree(folder, staged)
        for name in _EXTRA_FILES:
            if (directory / name).is_file() and directory != folder:
                shutil.copy2(directory / name, staged / name)
        write_model_card(staged, repo_id)
        api.create_repo(repo_id, private=private, exist_ok=True, token=token)
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, token=token)
        commit = api.upload_folder(
            folder_path=str(staged), repo_id=repo_id, commit_message=commit_message,
            revision=revision, token=token,
        )  # fmt: skip
    return str(commit)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    commit_message: str = "Upload model pruned with vbprune",
    revision: str | None = None,
) -> str:
    """Save ``model`` (see :func:`vbprune.save_pretrained`) with a model card and push it.

    Args:
        model: A (pruned) supported timm or transformers model.
        repo_id: ``user/name`` on the Hub; created if missing.
        private: Create the repo private.
        token: Hub token (default: the logged-in one).
        metadata: Extra ``vbprune`` config entries (base_model, pruning, report, speedup).
        commit_message: Message of the upload commit.
        revision: Branch to push to.

    Returns:
        The commit URL.
    """
    with tempfile.TemporaryDirectory() as staging:
        folder = save_pretrained(model, Path(staging) / "model", metadata=metadata)
        return push_folder(folder, repo_id, private, token, commit_message, revision)
