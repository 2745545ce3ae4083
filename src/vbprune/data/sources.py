"""Image-classification datasets for calibration and evaluation, via `datasets`.

Sources: a Hub dataset id (``ILSVRC/imagenet-1k`` for ImageNet; gated, needs a token),
optionally streamed; a local ImageNet-style folder ``ROOT/train/<class>/*``,
``ROOT/val/<class>/*``; or a ``datasets`` object.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, DatasetError, MissingInputError, OptionTypeError
from ..io.folders import is_local_path

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

IMAGENET_HUB_ID = "ILSVRC/imagenet-1k"
# split -> the folders that may hold it; folder -> the split name `imagefolder` gets
_FOLDERS_OF_SPLIT = {"train": ("train",), "val": ("val", "validation"),
                     "validation": ("val", "validation"), "test": ("test",)}  # fmt: skip
_SPLIT_OF_FOLDER = {"train": "train", "val": "validation", "validation": "validation",
                    "test": "test"}  # fmt: skip
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jpe"}


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
            from ..io.online import OFFLINE_HINT, hub_offline

            offline = hub_offline()  # the Hub unreachable: the cache only, at once
            try:
                dataset = datasets.load_dataset(source, split=split, streaming=streaming)
            except (ConnectionError, FileNotFoundError, HubDatasetMissing) as e:
                if offline:
                    raise MissingInputError(
                        f"dataset {source!r} is not a local folder (write ./{source} for a "
                        f"relative path), and {OFFLINE_HINT}"
                    ) from e
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


def undecoded(dataset: Dataset | IterableDataset, image_column: str = "image"):
    """``dataset`` whose images stay undecoded (``{"bytes", "path"}``) until
    :class:`~vbprune.data.ImageCollator` decodes them, so that an unreadable image is
    named (or skipped) rather than failing inside ``datasets``. Nothing is copied."""
    import datasets

    features = dataset.features
    if features is not None and isinstance(features.get(image_column), datasets.Image):
        return dataset.cast_column(image_column, datasets.Image(decode=False))
    return dataset


def _load_folder(root: Path, split: str, streaming: bool):
    """A split of a local ``ROOT/<split>/<class>/<image>`` folder, its labels numbered by
    the classes of ``ROOT/train`` (checked: a split may lack some, never add any)."""
    import datasets

    if not root.is_dir():
        raise MissingInputError(f"dataset folder not found: {root}")
    present = [name for name in _SPLIT_OF_FOLDER if (root / name).is_dir()]
    candidates = _FOLDERS_OF_SPLIT.get(split, (split,))
    folder = next((name for name in candidates if name in present), None)
    if folder is None:
        raise MissingInputError(
            f"{root} has no {split!r} split: expected {root}/{candidates[0]}/<class>/<image>;"
            f" found {present or 'no train/, val/ or test/ folder'}"
        )
    classes = _class_folders(root / folder)
    if folder != "train" and "train" in present:
        train = _class_folders(root / "train")
        extra = sorted(set(classes) - set(train))
        if extra:  # the labels of every split would be renumbered: refuse
            raise DatasetError(
                f"{root / folder} has classes that {root / 'train'} lacks: {extra[:5]}; "
                "its labels would not match the model's classes"
            )
        missing = sorted(set(train) - set(classes))
        if missing:
            warnings.warn(
                f"{root / folder} has no images of {len(missing)} class(es) of "
                f"{root / 'train'} ({missing[:5]}); labels keep the train numbering",
                stacklevel=3,
            )
    # every split's files, so that label numbers come from all classes (train's)
    used = [name for name in present if name == folder or name == "train"]
    data_files = {_SPLIT_OF_FOLDER[name]: str(root / name / "**") for name in used}
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # no "Downloading data" for files already here
    try:
        return datasets.load_dataset(
            "imagefolder", data_files=data_files, split=_SPLIT_OF_FOLDER[folder],
            streaming=streaming,
        )  # fmt: skip
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def _class_folders(folder: Path) -> list[str]:
    """The class sub-folders of a split folder; images lying directly in it are refused
    (`imagefolder` would label them all with the split's name)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    loose = sorted(p.name for p in entries if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if loose:
        raise DatasetError(
            f"{folder} holds images directly (e.g. {loose[0]}): expected "
            f"{folder}/<class>/<image>, one sub-folder per class"
        )
    classes = sorted(p.name for p in entries if p.is_dir())
    if not classes:
        raise DatasetError(f"{folder} has no class sub-folders: expected {folder}/<class>/<image>")
    return classes


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
