"""Image-classification datasets for calibration and evaluation, via `datasets`.

Sources: a Hub dataset id (``ILSVRC/imagenet-1k`` for ImageNet; gated, needs a token),
optionally streamed; a local ImageNet-style folder ``ROOT/train/<class>/*``,
``ROOT/val/<class>/*``; or a ``datasets`` object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, DatasetError, MissingInputError, OptionTypeError
from ..io.folders import is_local_path

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

IMAGENET_HUB_ID = "ILSVRC/imagenet-1k"
_FOLDER_OF_SPLIT = {"train": "train", "val": "val", "validation": "val"}
_SPLIT_OF_FOLDER = {"train": "train", "val": "validation"}  # names `imagefolder` gives


def load_image_dataset(
    source: Any,
    split: str = "train",
    *,
    image_column: str = "image",
    label_column: str | None = "label",
    num_samples: int | None = None,
    streaming: bool = False,
    shuffle_seed: int | None = 0,
) -> Dataset | IterableDataset:
    """Load one split of an image-classification dataset.

    Args:
        source: A Hub dataset id (e.g. ``"ILSVRC/imagenet-1k"``), a local folder with
            ``train/`` and/or ``val/`` holding one sub-folder per class, or a
            ``datasets.Dataset`` / ``IterableDataset`` / ``DatasetDict``.
        split: ``"train"``, ``"validation"`` (``"val"`` for a local folder) or any split
            the Hub dataset has.
        image_column: Column holding the images.
        label_column: Column holding integer labels, or ``None`` when not needed.
        num_samples: Keep this many samples (after shuffling), ``None`` for all.
        streaming: Stream a Hub dataset instead of downloading it.
        shuffle_seed: Shuffle with this seed before taking ``num_samples`` (class-sorted
            folders would otherwise give a few classes only); ``None`` keeps the order.

    Returns:
        The dataset, with at least ``image_column`` (and ``label_column``).

    Raises:
        MissingInputError: (a ``FileNotFoundError``) for a local folder or split that
            does not exist, or a Hub dataset that cannot be loaded.
        DatasetError: (a ``ValueError``) for a missing column or an empty split.
        ConfigError: for a bad ``num_samples``.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError as HubDatasetMissing

    if num_samples is not None and num_samples < 1:
        raise ConfigError(f"num_samples must be a positive integer or None, got {num_samples}")
    if isinstance(source, (str, os.PathLike)):
        source = str(source)
        if is_local_path(source):
            dataset = _load_folder(Path(source).expanduser(), split, streaming)
        else:
            try:
                dataset = datasets.load_dataset(source, split=split, streaming=streaming)
            except (ConnectionError, FileNotFoundError, HubDatasetMissing) as e:
                raise MissingInputError(
                    f"dataset {source!r} is not a local folder and could not be loaded from "
                    f"the Hub ({type(e).__name__}: {e})"
                ) from e
            except ValueError as e:  # `datasets`' word for a split or config it lacks
                raise DatasetError(f"cannot load split {split!r} of {source!r}: {e}") from e
    elif isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in source:
            raise DatasetError(f"dataset has no split {split!r}; it has {sorted(source)}")
        dataset = source[split]
    elif isinstance(source, (datasets.Dataset, datasets.IterableDataset)):
        dataset = source
    else:
        raise OptionTypeError(f"cannot read a dataset from {type(source).__name__}")

    what = f"split {split!r} of " + (source if isinstance(source, str) else "the dataset")
    if isinstance(dataset, datasets.Dataset) and len(dataset) == 0:
        raise DatasetError(f"{what} is empty")
    _check_columns(dataset, image_column, label_column, what)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(seed=shuffle_seed)
    if num_samples is not None:
        if isinstance(dataset, datasets.Dataset):
            dataset = dataset.select(range(min(num_samples, len(dataset))))
        else:
            dataset = dataset.take(num_samples)
    return dataset


def _load_folder(root: Path, split: str, streaming: bool):
    import datasets

    if not root.is_dir():
        raise MissingInputError(f"dataset folder not found: {root}")
    present = [folder for folder in _SPLIT_OF_FOLDER if (root / folder).is_dir()]
    folder = _FOLDER_OF_SPLIT.get(split)
    if folder not in present:
        raise MissingInputError(
            f"{root} has no {split!r} split: expected {root}/{folder or split}/<class>/<image>;"
            f" found {present or 'no train/ or val/ folder'}"
        )
    data_files = {_SPLIT_OF_FOLDER[f]: str(root / f / "**") for f in present}
    dataset = datasets.load_dataset(
        "imagefolder", data_files=data_files, split=_SPLIT_OF_FOLDER[folder], streaming=streaming
    )
    return dataset


def _check_columns(dataset, image_column: str, label_column: str | None, what: str) -> None:
    import datasets

    features = dataset.features
    if features is None:  # a stream of unknown features: look at the first example
        first = next(iter(dataset), None)
        if first is None:
            raise DatasetError(f"{what} is empty")
        columns = list(first)
    else:
        if isinstance(dataset, datasets.IterableDataset) and next(iter(dataset), None) is None:
            raise DatasetError(f"{what} is empty")
        columns = list(features)
    for kind, column in (("image", image_column), ("label", label_column)):
        if column is not None and column not in columns:
            raise DatasetError(
                f"{what} has no {kind} column {column!r}; its columns are {columns} "
                f"(choose one with --{kind}-column)"
            )
    if features is not None and not isinstance(features[image_column], datasets.Image):
        raise DatasetError(
            f"column {image_column!r} of {what} holds {features[image_column]}, not images "
            "(choose one with --image-column)"
        )
