"""Saved weights against a model: which tensors differ, before anything is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import nn

from ..core.errors import CheckpointError, MissingInputError


def shape_differences(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], most: int = 3
) -> list[str]:
    """Up to ``most`` tensor names whose shapes differ or that only one side has."""
    keys = expected.keys() | found.keys()
    return sorted(k for k in keys if expected.get(k) != found.get(k))[:most]


def check_weights_fit(checkpoint: Path, model: nn.Module) -> None:
    """Refuse a checkpoint folder whose ``model.safetensors`` is of another model
    (names or shapes differ), reading only the file's header.

    Raises:
        MissingInputError: the folder has no ``model.safetensors``.
        CheckpointError: the weights do not fit ``model``.
    """
    from safetensors import safe_open

    weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise MissingInputError(f"checkpoint {checkpoint} has no model.safetensors")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with safe_open(str(weights), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    differing = shape_differences(expected, found)
    if differing:
        raise CheckpointError(
            f"checkpoint {checkpoint} is of another model (e.g. {differing} differ)"
        )
