"""Image-classification data for calibration and evaluation, via `datasets`.

Sources: a Hub dataset id (``ILSVRC/imagenet-1k`` for ImageNet; gated, needs a token),
optionally streamed; a local ImageNet-style folder ``ROOT/train/<class>/*``,
``ROOT/val/<class>/*``; or a ``datasets`` object. Each process reads its own shard
(``split_dataset_by_node``): nothing is padded or repeated, so statistics and accuracy
count every sample exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .models import is_local_path, timm_built_size

if TYPE_CHECKING:
    from accelerate import Accelerator
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
        FileNotFoundError: for a local folder or split that does not exist.
        ValueError: for a missing column, an empty split or a bad ``num_samples``.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError as HubDatasetMissing

    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer or None, got {num_samples}")
    if isinstance(source, (str, os.PathLike)):
        source = str(source)
        if is_local_path(source):
            dataset = _load_folder(Path(source).expanduser(), split, streaming)
        else:
            try:
                dataset = datasets.load_dataset(source, split=split, streaming=streaming)
            except (ConnectionError, FileNotFoundError, HubDatasetMissing) as e:
                raise FileNotFoundError(
                    f"dataset {source!r} is not a local folder and could not be loaded from "
                    f"the Hub ({type(e).__name__}: {e})"
                ) from e
    elif isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in source:
            raise ValueError(f"dataset has no split {split!r}; it has {sorted(source)}")
        dataset = source[split]
    elif isinstance(source, (datasets.Dataset, datasets.IterableDataset)):
        dataset = source
    else:
        raise TypeError(f"cannot read a dataset from {type(source).__name__}")

    what = f"split {split!r} of " + (source if isinstance(source, str) else "the dataset")
    if isinstance(dataset, datasets.Dataset) and len(dataset) == 0:
        raise ValueError(f"{what} is empty")
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
        raise FileNotFoundError(f"dataset folder not found: {root}")
    present = [folder for folder in _SPLIT_OF_FOLDER if (root / folder).is_dir()]
    folder = _FOLDER_OF_SPLIT.get(split)
    if folder not in present:
        raise FileNotFoundError(
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
            raise ValueError(f"{what} is empty")
        columns = list(first)
    else:
        if isinstance(dataset, datasets.IterableDataset) and next(iter(dataset), None) is None:
            raise ValueError(f"{what} is empty")
        columns = list(features)
    for kind, column in (("image", image_column), ("label", label_column)):
        if column is not None and column not in columns:
            raise ValueError(
                f"{what} has no {kind} column {column!r}; its columns are {columns} "
                f"(choose one with --{kind}-column)"
            )
    if features is not None and not isinstance(features[image_column], datasets.Image):
        raise ValueError(
            f"column {image_column!r} of {what} holds {features[image_column]}, not images "
            "(choose one with --image-column)"
        )


def image_transform(model: nn.Module, training: bool = False) -> Callable[[Any], torch.Tensor]:
    """The preprocessing a model expects: PIL image -> ``(C, H, W)`` tensor.

    timm models use their data config (``resolve_model_data_config``); transformers
    models their image processor (from ``config._name_or_path``), else resize to
    ``config.image_size`` with the processor defaults of the family.

    Args:
        model: A timm or transformers image classifier.
        training: ``False``: the deterministic evaluation transform. ``True``: timm's
            training augmentation (random-resized crop, horizontal flip, colour jitter
            0.4) at the model's input size, mean and std; for fine-tuning.
    """
    import timm.data

    from .architectures import is_timm_model

    if is_timm_model(model):
        config = timm.data.resolve_model_data_config(model)
        built_for = timm_built_size(model)
        if built_for is not None and tuple(config["input_size"][1:]) != built_for:
            config["input_size"] = (config["input_size"][0], *built_for)
        return timm.data.create_transform(**config, is_training=training)
    processor = _hf_image_processor(model)
    if training:
        size = processor.crop_size if getattr(processor, "do_center_crop", False) else None
        size = size or processor.size
        height = getattr(size, "height", None) or getattr(size, "shortest_edge", None)
        width = getattr(size, "width", None) or height
        return timm.data.create_transform(
            (3, height, width), is_training=True, interpolation="bicubic",
            mean=tuple(processor.image_mean), std=tuple(processor.image_std),
        )  # fmt: skip

    def transform(image: Any) -> torch.Tensor:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    return transform


def _hf_image_processor(model: nn.Module):
    import warnings

    from transformers import AutoImageProcessor

    config = model.config
    name = getattr(config, "_name_or_path", "") or ""
    if name:
        try:
            return AutoImageProcessor.from_pretrained(name)
        except (OSError, ValueError):
            pass
    # No processor saved with the model: the family's processor at the config's size.
    from transformers import CONFIG_MAPPING, IMAGE_PROCESSOR_MAPPING

    classes = IMAGE_PROCESSOR_MAPPING[type(CONFIG_MAPPING[config.model_type]())]
    if isinstance(classes, dict):  # transformers 5: {"torchvision": cls, "pil": cls}
        classes = list(classes.values())
    processor_class = next(c for c in classes if c is not None)
    size = getattr(config, "image_size", 224)
    warnings.warn(
        f"no image processor found for {name or config.model_type!r}; using "
        f"{processor_class.__name__} defaults at {size} px",
        stacklevel=3,
    )
    default = processor_class()
    options: dict[str, Any] = {}
    if getattr(default, "do_center_crop", False):  # e.g. DeiT: resize, then crop to size
        options["crop_size"] = {"height": size, "width": size}
    # Families spell the size differently (ViT: height/width, ConvNeXt: shortest_edge).
    if getattr(default.size, "shortest_edge", None) is not None:
        return processor_class(size={"shortest_edge": size}, **options)
    return processor_class(size={"height": size, "width": size}, **options)


def with_image_transform(
    dataset: Dataset, transform: Callable[[Any], torch.Tensor], image_column: str = "image"
) -> Dataset:
    """``dataset`` whose images become ``pixel_values`` through ``transform`` when read.

    Applied afresh on every access, so a random (training) transform gives new crops
    every epoch; :class:`ImageCollator` then only stacks. The dataset is not copied.
    """

    def apply(batch: dict[str, list]) -> dict[str, list]:
        batch = dict(batch)
        images = batch.pop(image_column)
        batch["pixel_values"] = [transform(image.convert("RGB")) for image in images]
        return batch

    return dataset.with_transform(apply)


class ImageCollator:
    """Turn raw examples into ``{"pixel_values": (B, C, H, W), "labels": (B,)}``.

    Examples that already hold ``pixel_values`` (see :func:`with_image_transform`) are
    stacked as they are.
    """

    def __init__(
        self,
        transform: Callable[[Any], torch.Tensor],
        image_column: str = "image",
        label_column: str | None = "label",
    ):
        self.transform = transform
        self.image_column = image_column
        self.label_column = label_column

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images = [
            ex["pixel_values"]
            if "pixel_values" in ex
            else self.transform(ex[self.image_column].convert("RGB"))
            for ex in examples
        ]
        batch = {"pixel_values": torch.stack(images)}
        if self.label_column is not None:
            batch["labels"] = torch.tensor([int(ex[self.label_column]) for ex in examples])
        return batch


def shard_for_process(
    dataset: Dataset | IterableDataset, rank: int, world_size: int
) -> Dataset | IterableDataset:
    """This process's part of ``dataset``: every sample in exactly one process.

    Map-style: a contiguous block, possibly empty (more processes than samples).
    Streams: every ``world_size``-th example of the one shuffled (and truncated) stream,
    so that N processes read the same samples as one.
    """
    import datasets

    if world_size == 1:
        return dataset
    if isinstance(dataset, datasets.Dataset):
        size = len(dataset)
        return dataset.select(range(size * rank // world_size, size * (rank + 1) // world_size))
    from datasets.distributed import split_dataset_by_node

    return split_dataset_by_node(dataset, rank=rank, world_size=world_size, strategy="examples")


def make_loader(
    dataset: Dataset | IterableDataset,
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    num_workers: int = 0,
    accelerator: Accelerator | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader over this process's shard (see :func:`shard_for_process`).

    With a stream and several workers, workers read different stream shards, so which
    samples a truncated stream yields depends on ``num_workers`` (never on the number
    of processes); none is read twice.
    """
    if accelerator is not None:
        dataset = shard_for_process(dataset, accelerator.process_index, accelerator.num_processes)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=accelerator is not None and accelerator.device.type == "cuda",
    )
