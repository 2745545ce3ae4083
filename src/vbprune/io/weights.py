"""Saved weights against a model: which tensors differ, before anything is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..core.errors import CheckpointError, MissingInputError


def shape_differences(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], most: int = 3
) -> list[str]:
    """Up to ``most`` tensor names whose shapes differ or that only one side has."""
    keys = expected.keys() | found.keys()
    return sorted(k for k in keys if expected.get(k) != found.get(k))[:most]


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # timm saves either
# transformers also shards them, with an index
HF_WEIGHT_FILES = (*WEIGHT_FILES, "model.safetensors.index.json", "pytorch_model.bin.index.json")


def weights_file(
    folder: Path, name: str | Path | None = None, candidates: tuple[str, ...] = WEIGHT_FILES
) -> Path:
    """The weights of a saved model folder: the first of ``candidates`` there
    (``model.safetensors``, else the ``pytorch_model.bin`` timm writes without
    ``safe_serialization``).

    Raises:
        MissingInputError: when none is there (``name`` names the model).
    """
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise MissingInputError(
        f"{name or folder} holds no model weights ({' or '.join(WEIGHT_FILES)})"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, or a PyTorch ``.bin`` read with
    ``torch.load(weights_only=True)`` (tensors only: a pickle that would run code is
    refused, never unpickled).

    Raises:
        CheckpointError: a file that cannot be read, or a ``.bin`` that weights-only
            loading refuses (naming the file and why).
    """
    if path.suffix != ".bin":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors' own error: a truncated or foreign file
            raise CheckpointError(f"{path} cannot be read as safetensors: {error}") from error
    import argparse
    import pickle
    import re

    try:  # a training checkpoint's arguments (timm's train.py) are data, not code
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # torch colours its advice
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # the line that names what was refused (a GLOBAL it would import), not the advice
        named = [line for line in lines if "GLOBAL" in line or "global" in line]
        reason = (named or lines)[0].removeprefix("WeightsUnpickler error: ")
        raise CheckpointError(
            f"{path} was refused: it is a pickle that loads more than tensors, and vbprune "
            f"does not run its code ({reason}); save it as model.safetensors"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint's weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a dict of tensors")
    return state


def checkpoint_state_dict(checkpoint: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of a checkpoint folder, named as in ``model.state_dict()``, checked to
    fit ``model`` (the same names and shapes, nothing missing, nothing extra).

    A transformers model is read back through its own class, so the names
    ``save_pretrained`` converted on the way out (transformers 5 renames modules of many
    families, e.g. ViT's ``encoder.layer.0.attention.attention.query`` and
    ``layers.0.attention.q_proj``) come back as the model names them; other models
    (timm, wrapped for the Trainer) as the tensors were saved.

    Raises:
        MissingInputError: the folder has no weights.
        CheckpointError: the weights do not fit ``model``.
    """
    from transformers import PreTrainedModel

    weights = weights_file(checkpoint, f"checkpoint {checkpoint}")
    if isinstance(model, PreTrainedModel):
        from .hf_format import load_hf

        try:
            state = load_hf(checkpoint, f"checkpoint {checkpoint}").state_dict()
        except CheckpointError as error:
            raise CheckpointError(f"checkpoint {checkpoint} is of another model: {error}") from None
    else:
        state = read_weights(weights)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differing = shape_differences(expected, {k: tuple(v.shape) for k, v in state.items()})
    if differing:
        raise CheckpointError(
            f"checkpoint {checkpoint} is of another model (e.g. {differing} differ)"
        )
    return state


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of ``model``'s parameters and buffers (names, shapes, dtypes and
    values): statistics record it, so statistics of other weights are recognised.

    One pass over the weights (DeiT-B: about a second on a CPU); tensors on a GPU are
    copied to the CPU one at a time.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if tensor.numel():
            data = tensor.cpu().contiguous().reshape(-1)
            digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
