"""Loading image-classification data: folders, datasets objects, columns, bad input."""

from __future__ import annotations

import datasets
import pytest
import torch

from conftest import FAMILIES
from vbprune.data import ImageCollator, image_transform, load_image_dataset, make_loader


def test_imagenet_style_folder_splits_and_sampling(image_folder):
    train = load_image_dataset(image_folder, "train")
    val = load_image_dataset(image_folder, "val")
    assert len(train) == 21 and len(val) == 9
    assert train.features["label"].names == ["cat", "dog", "eel"]
    assert len(load_image_dataset(image_folder, "validation")) == 9
    few = load_image_dataset(image_folder, "train", num_samples=5)
    assert len(few) == 5 and len(set(few["label"])) > 1  # shuffled: not one class only
    stream = load_image_dataset(image_folder, "train", streaming=True, num_samples=6)
    assert sum(1 for _ in stream) == 6


def test_loader_yields_model_sized_pixels_and_labels(image_folder):
    for name in ("timm-vit", "hf-vit"):
        model = FAMILIES[name]()
        collate = ImageCollator(image_transform(model))
        dataset = load_image_dataset(image_folder, "val")
        batches = list(make_loader(dataset, collate, batch_size=4))
        assert [b["pixel_values"].shape for b in batches] == [
            (4, 3, 32, 32),
            (4, 3, 32, 32),
            (1, 3, 32, 32),
        ]
        labels = torch.cat([b["labels"] for b in batches])
        assert sorted(labels.tolist()) == sorted(dataset["label"])


def test_missing_folder_and_split(tmp_path, image_folder):
    with pytest.raises(FileNotFoundError, match=r"dataset folder not found: .*nowhere"):
        load_image_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no 'test' split"):
        load_image_dataset(image_folder, "test")


def test_dataset_without_image_column_names_the_columns():
    table = datasets.Dataset.from_dict({"img": [1, 2], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"no image column 'image'; its columns are \['img'"):
        load_image_dataset(table)
    with pytest.raises(ValueError, match="no label column 'target'"):
        load_image_dataset(table, image_column="img", label_column="target")


def test_empty_split_and_bad_counts():
    empty = datasets.Dataset.from_dict({"image": [], "label": []})
    with pytest.raises(ValueError, match="empty"):
        load_image_dataset(empty)
    with pytest.raises(ValueError, match="num_samples"):
        load_image_dataset(empty, num_samples=0)
    splits = datasets.DatasetDict({"train": empty})
    with pytest.raises(ValueError, match=r"no split 'validation'; it has \['train'\]"):
        load_image_dataset(splits, "validation")
