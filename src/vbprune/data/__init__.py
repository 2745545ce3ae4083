"""Data for calibration, evaluation and distillation: datasets (``sources``),
preprocessing (``transforms``) and per-process loaders (``loaders``).

    from vbprune.data import ImageCollator, image_transform, load_image_dataset, make_loader
"""

from .loaders import make_loader, shard_for_process
from .sources import IMAGENET_HUB_ID, load_image_dataset
from .transforms import ImageCollator, image_transform, with_image_transform

__all__ = [
    "IMAGENET_HUB_ID",
    "ImageCollator",
    "image_transform",
    "load_image_dataset",
    "make_loader",
    "shard_for_process",
    "with_image_transform",
]
