"""Preprocessing: the transform a model expects, applied per example or per batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..architectures import model_backend
from ..architectures.interface import timm_built_size
from ..core.errors import DatasetError

SKIP_HINT = "pass --skip-bad-images to skip unreadable images"

if TYPE_CHECKING:
    from datasets import Dataset


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

    if model_backend(model) == "timm":
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


def read_image(value: Any, where: str) -> Any:
    """An RGB PIL image, fully decoded, from a PIL image or an undecoded ``datasets``
    image (``{"bytes": ..., "path": ...}``).

    Raises:
        DatasetError: naming ``where`` for a truncated, corrupt or unknown image file.
    """
    import io

    from PIL import Image

    try:
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
            if data is None and path is None:
                raise ValueError("the image is empty")
            value = Image.open(io.BytesIO(data) if data is not None else path)
        if value is None:
            raise ValueError("the image is missing (None)")
        return value.convert("RGB")  # decodes every pixel: a truncated file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read image {where}: {error}; {SKIP_HINT}") from None


def image_name(example: dict[str, Any], image_column: str) -> str:
    """How to name an example's image in a message: its file and its index, when known."""
    value = example.get(image_column)
    path = value.get("path") if isinstance(value, dict) else getattr(value, "filename", None)
    index = example.get("__index__")
    parts = [str(path) if path else None, f"#{index}" if index is not None else None]
    return " ".join(p for p in parts if p) or "of the dataset"


def with_image_transform(
    dataset: Dataset,
    transform: Callable[[Any], torch.Tensor],
    image_column: str = "image",
    skip_bad_images: bool = False,
) -> Dataset:
    """``dataset`` whose images become ``pixel_values`` through ``transform`` when read.

    Applied afresh on every access, so a random (training) transform gives new crops
    every epoch; :class:`ImageCollator` then only stacks. The dataset is not copied.
    With ``skip_bad_images`` an unreadable image gives ``pixel_values`` ``None`` (the
    collator leaves it out and counts it) instead of an error naming it.
    """

    def apply(batch: dict[str, list]) -> dict[str, list]:
        batch = dict(batch)
        images = batch.pop(image_column)
        pixels, bad = [], []
        for image in images:
            where = image_name({image_column: image}, image_column)
            try:
                pixels.append(transform(read_image(image, where)))
                bad.append(None)
            except DatasetError:
                if not skip_bad_images:
                    raise
                pixels.append(None)
                bad.append(where)
        batch["pixel_values"], batch["__bad__"] = pixels, bad
        return batch

    return dataset.with_transform(apply)


class ImageCollator:
    """Turn raw examples into ``{"pixel_values": (B, C, H, W), "labels": (B,)}``.

    Examples that already hold ``pixel_values`` (see :func:`with_image_transform`) are
    stacked as they are. Images are decoded here (from PIL images or undecoded
    ``datasets`` images): an unreadable one raises a :class:`~vbprune.DatasetError`
    naming its file and position, or with ``skip_bad_images`` is left out and named in
    the batch's ``"skipped"`` list (a batch of only bad images has zero images); with
    ``keep_slots`` it stays as a black image labelled -100 instead. ``label_map`` turns
    the dataset's labels into the model's class indices (see
    :func:`vbprune.commands.runtime.label_mapping`).
    """

    def __init__(
        self,
        transform: Callable[[Any], torch.Tensor],
        image_column: str = "image",
        label_column: str | None = "label",
        skip_bad_images: bool = False,
        keep_slots: bool = False,
        label_map: Mapping[int, int] | None = None,
    ):
        self.transform = transform
        self.image_column = image_column
        self.label_column = label_column
        self.skip_bad_images = skip_bad_images
        # evaluation across processes needs equal batch sizes: a skipped image keeps its
        # slot as a black image labelled -100 (ignored by the loss and the metrics)
        self.keep_slots = keep_slots
        # the dataset's label -> the model's class index (labels follow the model's names)
        self.label_map = dict(label_map) if label_map else None
        self._shape: tuple[int, ...] | None = None

    def _blank(self) -> torch.Tensor:
        """What a skipped image leaves: zeros the shape the transform gives."""
        if self._shape is None:  # per DataLoader worker: ask the transform itself
            from PIL import Image

            self._shape = tuple(self.transform(Image.new("RGB", (64, 64))).shape)
        return torch.zeros(self._shape)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        images, labels, skipped = [], [], []
        for example in examples:
            pixels = example.get("pixel_values")
            bad = example.get("__bad__") if pixels is None else None  # see with_image_transform
            if pixels is None and bad is None:
                where = image_name(example, self.image_column)
                try:
                    pixels = self.transform(read_image(example[self.image_column], where))
                except DatasetError:
                    if not self.skip_bad_images:
                        raise
                    bad = where
            if bad is not None:
                skipped.append(bad)
                if not self.keep_slots:
                    continue
                pixels = self._blank()
            images.append(pixels)
            if self.label_column is not None:
                label = -100 if bad is not None else int(example[self.label_column])
                if self.label_map is not None:  # -1 (unlabelled), -100 (skipped) stay
                    label = self.label_map.get(label, label)
                labels.append(label)
        if images:
            self._shape = tuple(images[0].shape)
        batch: dict[str, Any] = {
            "pixel_values": torch.stack(images) if images else self._blank()[None][:0]
        }
        if self.label_column is not None:
            batch["labels"] = torch.tensor(labels, dtype=torch.int64)
        if skipped:
            batch["skipped"] = skipped
        return batch
