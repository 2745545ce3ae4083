"""The commands' options as typed groups: model, data, output (standard library only).

A command's ``run(args)`` turns the parsed arguments into these (and a
:class:`~vbprune.PruningConfig`) once, then hands them to the steps in
:mod:`.runtime`, which never see argparse. Field names are the options' ``dest`` names,
so :meth:`OptionGroup.from_args` reads any group off any command's arguments.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, TypeVar

G = TypeVar("G", bound="OptionGroup")


class OptionGroup:
    """A dataclass of options that reads itself off parsed arguments."""

    @classmethod
    def from_args(cls: type[G], args: argparse.Namespace, **overrides: Any) -> G:
        """The group's fields from ``args`` (those a command lacks keep their defaults),
        with ``overrides`` on top."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class ModelOptions(OptionGroup):
    """Which model, and how it is loaded.

    Attributes:
        model: ``timm:NAME``, ``hf:ID``, a local folder or a ``vbprune prune`` output.
        pretrained: Load trained weights (``False``: random weights drawn with ``seed``).
        dtype: ``float32``, ``bfloat16``, ``float16`` or ``float64``.
        seed: Seed of the random weights when not ``pretrained``.
    """

    model: str
    pretrained: bool = True
    dtype: str = "float32"
    seed: int = 0


@dataclass(frozen=True)
class DataOptions(OptionGroup):
    """Which images, and how they are read.

    Attributes:
        dataset: A Hub dataset id or a local ``ROOT/{train,val}/<class>/*`` folder.
        split: The split to calibrate (or evaluate) on.
        num_samples: Images to use (``None``: all), drawn with ``seed``.
        batch_size: Images per step and process.
        num_workers: Loader worker processes.
        image_column, label_column: The dataset's columns.
        streaming: Stream a Hub dataset.
        skip_bad_images: Skip unreadable images (counted and named) instead of stopping.
        seed: Seed of the sampling shuffle.
        covariance_fraction: Share of each image's tokens the covariance is estimated on.
    """

    dataset: str | None = None
    split: str = "train"
    num_samples: int | None = None
    batch_size: int = 64
    num_workers: int = 0
    image_column: str = "image"
    label_column: str = "label"
    streaming: bool = False
    skip_bad_images: bool = False
    seed: int = 0
    covariance_fraction: float = 1.0


@dataclass(frozen=True)
class OutputOptions(OptionGroup):
    """Where the results go.

    Attributes:
        output: The output folder (or file, for ``calibrate``).
        overwrite: Replace what is there.
        push_to_hub: Then upload to this Hub repo id.
        private: Create that repo private.
        quiet: No progress bars or progress lines (results are still printed).
    """

    output: str
    overwrite: bool = False
    push_to_hub: str | None = None
    private: bool = False
    quiet: bool = False
