"""What vbprune 0.1 wrote still loads, and its names still work (with a warning)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import vbprune
from test_checkpoint import pruned, stock_differences
from testing_utils import logits

OPTIONS_0_1 = ("ratio", "scope", "round_to", "min_keep", "compensate")


LEGACY_FILES = Path(__file__).parent / "fixtures" / "vbprune_0_2"


def to_legacy_transformers_layout(folder, key: str = "mlp_widths") -> None:
    """Rewrite a saved transformers checkpoint as vbprune 0.1/0.2 wrote it: model type
    ``vbprune_<family>``, one pruned subclass per family (their modeling file, kept in
    ``tests/fixtures``), the widths as a list in forward order under ``key``."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    stock = config["architectures"][0]
    family = stock.removesuffix("ForImageClassification")
    config["model_type"] = "vbprune_" + config["model_type"]
    if stock == "DeiTForImageClassificationWithTeacher":  # 0.2's own type for it
        config["model_type"], family = "vbprune_deit_distilled", "DeiTDistilled"
    config["architectures"] = ["VBPrune" + stock]
    config["auto_map"] = {
        "AutoConfig": f"modeling_vbprune.VBPrune{family}Config",
        "AutoModelForImageClassification": f"modeling_vbprune.VBPrune{stock}",
    }
    config[key] = list(config.pop("mlp_widths").values())
    del config["mlp_layout"]
    path.write_text(json.dumps(config))
    (folder / "surgery.py").unlink()
    for name in ("modeling_vbprune.py", "layouts.py"):
        shutil.copyfile(LEGACY_FILES / name, folder / name)


def to_0_1_layout(folder) -> None:
    """Rewrite a saved config as vbprune 0.1 wrote it: ``hidden_sizes``,
    ``mlp_hidden_sizes``, ``original_sizes`` and loose pruning options."""
    path = folder / "config.json"
    if "mlp_widths" in json.loads(path.read_text()):
        to_legacy_transformers_layout(folder, key="mlp_hidden_sizes")
    config = json.loads(path.read_text())
    section = config["vbprune"]
    section["hidden_sizes"] = section.pop("widths")
    report = section["report"]
    report["original_sizes"] = report.pop("original_widths")
    report["hidden_sizes"] = report.pop("widths")
    for options in (section, report):  # 0.1 had no criterion nor seed
        options.update({k: v for k, v in options.pop("pruning").items() if k in OPTIONS_0_1})
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("family", ["timm-convnext", "hf-swin"])
def test_checkpoints_of_vbprune_0_1_load(family, images, tmp_path):
    model = pruned(family, images)
    widths = vbprune.find_mlp_sites(model)
    original = {site.name: 2 * site.width for site in widths}
    pruning = vbprune.PruningConfig(ratio=0.4).to_dict()
    report = {"original_widths": original, "widths": {s.name: s.width for s in widths},
              "pruning": pruning}  # fmt: skip
    folder = vbprune.save_pretrained(model, tmp_path / "old",
                                     metadata={"pruning": pruning, "report": report})  # fmt: skip
    to_0_1_layout(folder)
    loaded = vbprune.from_pretrained(folder)
    assert torch.equal(logits(loaded, images), logits(model, images))
    from vbprune.io.metadata import loaded_metadata

    section = loaded_metadata(loaded)
    assert section["widths"] == report["widths"]
    assert section["pruning"] == {k: pruning[k] for k in OPTIONS_0_1}
    assert section["report"]["original_widths"] == original
    # saved again, it is written in this version's layout
    again = vbprune.save_pretrained(loaded, tmp_path / "new")
    new_section = json.loads((again / "config.json").read_text())["vbprune"]
    assert {"widths", "pruning"} <= set(new_section) and "hidden_sizes" not in new_section
    card = (again / "README.md").read_text()
    assert "ratio 0.4" in card and "50.0 %" in card  # options and shares read back


@pytest.mark.parametrize("key", ["mlp_widths", "mlp_hidden_sizes"])  # 0.2, 0.1
def test_legacy_transformers_checkpoints_load_in_vbprune(key, images, tmp_path):
    model = pruned("hf-vit", images)
    folder = vbprune.save_pretrained(model, tmp_path / "old")
    to_legacy_transformers_layout(folder, key)
    loaded = vbprune.from_pretrained(folder)
    assert torch.equal(logits(loaded, images), logits(model, images))
    again = vbprune.save_pretrained(loaded, tmp_path / "new")  # in today's layout
    assert json.loads((again / "config.json").read_text())["model_type"] == "vit"


def test_a_0_2_distilled_deit_checkpoint_loads(images, tmp_path):
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    from testing_utils import TINY_HF_VIT_ARGS, randomize

    model = randomize(DeiTForImageClassificationWithTeacher(DeiTConfig(**TINY_HF_VIT_ARGS)))
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.4)
    folder = vbprune.save_pretrained(model, tmp_path / "old")
    to_legacy_transformers_layout(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == (
        "vbprune_deit_distilled"
    )
    loaded = vbprune.from_pretrained(folder)
    assert type(loaded).__name__ == "DeiTForImageClassificationWithTeacher"
    assert torch.equal(logits(loaded, images), logits(model, images))


def test_a_0_2_timm_checkpoint_without_the_attention_pool_width_loads(images, tmp_path):
    import timm

    from testing_utils import TINY_TIMM_VIT_ARGS, randomize

    args = dict(TINY_TIMM_VIT_ARGS, global_pool="map")  # a SigLIP-style attention pool
    model = randomize(timm.create_model("vit_tiny_patch16_224", pretrained=False, **args))
    stats = vbprune.VarianceCalibrator(model).run([images])
    # 0.2 did not know the attention pool's MLP: pruned without it, recorded without it
    model = randomize(timm.create_model("vit_tiny_patch16_224", pretrained=False, **args))
    pool = vbprune.find_mlp_sites(model)[-1]
    assert pool.name == "attn_pool.mlp"
    plan = vbprune.plan_pruning({k: v for k, v in stats.items() if k != pool.name}, ratio=0.4)
    plan.sites[pool.name] = vbprune.SitePlan(pool.width, list(range(pool.width)), [])
    vbprune.apply_plan(model, plan)
    folder = vbprune.save_pretrained(model, tmp_path / "old", model_args=args)
    config = json.loads((folder / "config.json").read_text())
    del config["vbprune"]["widths"][pool.name]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = vbprune.from_pretrained(folder)
    assert torch.equal(logits(loaded, images), logits(model, images))


@pytest.mark.slow
def test_a_0_1_transformers_checkpoint_loads_with_stock_transformers(images, tmp_path):
    model = pruned("hf-vit", images)
    folder = vbprune.save_pretrained(model, tmp_path / "old", metadata={"report": {}})
    to_legacy_transformers_layout(folder, "mlp_hidden_sizes")
    # its own (0.1/0.2) modeling file, as a real old checkpoint carries it
    assert stock_differences({folder: (model, images)}, tmp_path)[str(folder)] < 1e-6


def test_the_0_1_attribute_aliases_are_gone(images):
    """0.1's attribute names warned since 0.2 and are removed; its files still load
    (tests above, and test_config.test_plans_of_vbprune_0_1_load)."""
    model = pruned("timm-vit", images, ratio=0.0)
    stats = vbprune.VarianceCalibrator(model).run([images])
    result = vbprune.prune_model(model, stats, ratio=0.25)
    site = vbprune.find_mlp_sites(model)[0]
    gone = [(result, "hidden_sizes"), (result, "original_sizes"), (result.plan, "hidden_sizes"),
            (result.plan, "ratio"), (site, "hidden_size")]  # fmt: skip
    for owner, old in gone:
        assert not hasattr(owner, old), old
    assert not hasattr(vbprune, "register_auto_classes")
    assert result.widths[site.name] == site.width


def test_0_1_import_paths_that_stay():
    from vbprune.data import ImageCollator, image_transform, load_image_dataset, make_loader
    from vbprune.evaluation import evaluate_model, measure_latency, top1_accuracy

    assert evaluate_model.__module__ == top1_accuracy.__module__ == "vbprune.evaluation.accuracy"
    assert measure_latency.__module__ == "vbprune.evaluation.latency"
    assert all(callable(f) for f in (ImageCollator, image_transform, load_image_dataset,
                                     make_loader))  # fmt: skip
