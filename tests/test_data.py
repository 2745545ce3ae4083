"""Loading image-classification data: folders, datasets objects, columns, bad input."""

from __future__ import annotations

import datasets
import pytest
import torch

from testing_utils import FAMILIES
from vbprune.data import (
    ImageCollator,
    image_transform,
    load_image_dataset,
    make_loader,
    shard_for_process,
)


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


def ids_of(dataset):
    return [example["i"] for example in dataset]


@pytest.mark.parametrize("size, world", [(1, 2), (3, 4), (21, 2), (10, 3)])
def test_map_style_shards_cover_every_sample_once(size, world):
    table = datasets.Dataset.from_dict({"i": list(range(size))})
    parts = [ids_of(shard_for_process(table, rank, world)) for rank in range(world)]
    assert sorted(i for part in parts for i in part) == list(range(size))  # empty shards allowed


@pytest.mark.parametrize("num_shards", [1, 4])
def test_truncated_stream_reads_the_same_samples_on_any_number_of_processes(num_shards):
    table = datasets.Dataset.from_dict({"i": list(range(40))})
    stream = table.to_iterable_dataset(num_shards=num_shards).shuffle(seed=0, buffer_size=10)
    stream = stream.take(7)
    one = ids_of(stream)
    parts = [ids_of(shard_for_process(stream, rank, 2)) for rank in range(2)]
    assert len(one) == 7 and sorted(i for part in parts for i in part) == sorted(one)


@pytest.mark.parametrize("name", ["hf-vit", "hf-deit", "hf-swin", "hf-convnext"])
def test_transformers_fallback_preprocessing_matches_the_model_size(name):
    from PIL import Image

    model = FAMILIES[name]()
    model.config.image_size = 32
    with pytest.warns(UserWarning, match="no image processor"):
        transform = image_transform(model)
    pixels = transform(Image.new("RGB", (50, 40)))
    assert pixels.shape == (3, 32, 32)


def test_columns_that_are_not_images_and_empty_streams(tmp_path):
    table = datasets.Dataset.from_dict({"image": [1, 2], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"column 'image' .* not images"):
        load_image_dataset(table)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    empty = datasets.IterableDataset.from_generator(lambda: iter(()), features=features)
    with pytest.raises(ValueError, match="is empty"):
        load_image_dataset(empty)


def test_mistyped_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_image_dataset("data/imagenet/train_set")


@pytest.mark.parametrize("family", ["timm-vit", "hf-vit"])
def test_training_transform_augments_and_evaluation_transform_does_not(family, image_folder):
    from vbprune.data import (
        ImageCollator,
        image_transform,
        load_image_dataset,
        with_image_transform,
    )

    model = FAMILIES[family]()
    train = load_image_dataset(str(image_folder), "train", num_samples=4)
    image = train[0]["image"].convert("RGB")
    evaluation, training = image_transform(model), image_transform(model, training=True)
    assert torch.equal(evaluation(image), evaluation(image))
    torch.manual_seed(0)
    crops = [training(image) for _ in range(4)]
    assert all(c.shape == evaluation(image).shape for c in crops)  # the model's input size
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # random crops
    # the dataset yields new crops on every read; the collator stacks them with labels
    augmented = with_image_transform(train, training)
    batch = ImageCollator(evaluation)([augmented[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, *crops[0].shape)
    assert batch["labels"].tolist() == [train[i]["label"] for i in range(4)]
    assert not torch.equal(augmented[0]["pixel_values"], augmented[0]["pixel_values"])


def test_local_folder_layouts_that_would_mislabel_are_refused_or_warned(tmp_path):
    import shutil
    import warnings

    from testing_utils import write_image_folder
    from vbprune import DatasetError
    from vbprune.data import load_image_dataset

    root = write_image_folder(tmp_path / "images")  # train/ and val/, classes cat dog eel

    def variant(name):
        copy = tmp_path / name
        shutil.copytree(root, copy)
        return copy

    flat = variant("flat")  # images directly in val/: labelled "val", silently
    for image in (flat / "val" / "dog").iterdir():
        image.rename(flat / "val" / image.name)
    shutil.rmtree(flat / "val" / "dog")
    with pytest.raises(DatasetError, match=r"flat/val holds images directly"):
        load_image_dataset(flat, "val")
    extra = variant("extra")  # a class train lacks: every label would be renumbered
    shutil.copytree(extra / "val" / "dog", extra / "val" / "fox")
    with pytest.raises(DatasetError, match=r"classes that .*/train lacks: \['fox'\]"):
        load_image_dataset(extra, "validation")
    fewer = variant("fewer")  # a class missing from val: warned, train's numbering kept
    shutil.rmtree(fewer / "val" / "dog")
    with pytest.warns(UserWarning, match=r"no images of 1 class\(es\).*\['dog'\]"):
        val = load_image_dataset(fewer, "val", shuffle_seed=None)
    assert val.features["label"].names == ["cat", "dog", "eel"]
    assert sorted(set(val["label"])) == [0, 2]  # eel keeps its train label
    test = variant("test")  # a local test/ split is found
    (test / "val").rename(test / "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_image_dataset(test, "test")) == 9


def test_labels_beyond_the_models_classes_are_refused(image_folder, tmp_path, capsys):
    import timm
    from timm.models import save_for_hf

    from testing_utils import TINY_TIMM_ARGS, run_vbprune

    args = {**TINY_TIMM_ARGS, "num_classes": 2}  # the folder has 3 classes
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    save_for_hf(model, str(tmp_path / "two"), model_args=args, safe_serialization=True)
    out = tmp_path / "e"
    code = run_vbprune("evaluate", "--model", tmp_path / "two", "--dataset", image_folder,
                       "--split", "val", "--num-workers", 0, "--output", out)  # fmt: skip
    assert code == 2
    assert "has 3 classes, the model predicts 2" in capsys.readouterr().err
    assert not out.exists()


def test_collator_skips_or_keeps_slots_of_unreadable_images():
    import io

    from PIL import Image

    from vbprune import DatasetError
    from vbprune.data import ImageCollator
    from vbprune.training.trainer import IGNORED, top1_metrics

    def png(color) -> dict:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    import numpy as np

    def transform(image) -> torch.Tensor:  # like a model's: every image to one size
        pixels = np.asarray(image.resize((8, 8)), dtype=np.float32)
        return torch.from_numpy(pixels).permute(2, 0, 1)

    good = {"image": png("red"), "label": 1, "__index__": 0}
    truncated = {"image": {"bytes": png("red")["bytes"][:40], "path": "a.png"}, "label": 2}
    missing = {"image": None, "label": 0, "__index__": 7}
    strict = ImageCollator(transform)
    with pytest.raises(DatasetError, match=r"cannot read image a.png.*--skip-bad-images"):
        strict([good, truncated])
    skipping = ImageCollator(transform, skip_bad_images=True)
    batch = skipping([truncated, good, missing])
    assert batch["pixel_values"].shape == (1, 3, 8, 8) and batch["labels"].tolist() == [1]
    assert batch["skipped"] == ["a.png", "#7"]
    # a worker whose first batch is all bad: an empty batch of the transform's shape
    empty = ImageCollator(transform, skip_bad_images=True)([missing])
    assert empty["pixel_values"].shape == (0, 3, 8, 8) and empty["labels"].numel() == 0
    # keep_slots: the batch keeps its size (processes gather equal batches), label -100
    slots = ImageCollator(transform, skip_bad_images=True, keep_slots=True)([truncated, good])
    assert slots["pixel_values"].shape == (2, 3, 8, 8) and not slots["pixel_values"][0].any()
    assert slots["labels"].tolist() == [IGNORED, 1]
    from transformers.trainer_utils import EvalPrediction

    logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0]])
    scored = top1_metrics(EvalPrediction(predictions=logits, label_ids=slots["labels"]))
    assert scored == {"top1": 1.0, "samples": 1}  # the slot is not scored


def test_loader_rows_carry_their_position_in_one_read_per_batch():
    import datasets

    from vbprune.data.loaders import _Positions

    data = datasets.Dataset.from_dict({"x": list(range(10))})
    rows = _Positions(data, offset=5)
    assert rows.__getitems__([2, 3]) == [rows[2], rows[3]] == [
        {"x": 2, "__index__": 7}, {"x": 3, "__index__": 8}]  # fmt: skip
