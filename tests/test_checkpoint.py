"""Pruned checkpoints: bit-exact round trips, loading without vbprune, bad files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize


def safetensors_keys(path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())


def pruned(family, images, ratio=0.4):
    model = randomize(FAMILIES[family]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, ratio)
    return model


def test_round_trip_is_bit_exact(family, images, tmp_path):
    model = pruned(family, images)
    path = vbprune.save_pretrained(model, tmp_path / "out", metadata={"ratio": 0.4})
    loaded = vbprune.from_pretrained(path)
    assert not loaded.training
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (logits(model, images) - logits(loaded, images)).abs().max() < 1e-6
    widths = {s.name: s.width for s in vbprune.find_mlp_sites(loaded)}
    assert widths == {s.name: s.width for s in vbprune.find_mlp_sites(model)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing half-written
    assert not list((tmp_path / "out").glob("*.bin")) and not list((tmp_path / "out").glob("*.pt"))


STOCK_LOAD = r"""
import sys, json, torch
sys.modules["vbprune"] = None  # importing vbprune now fails: stock transformers only
try:
    import vbprune
except ImportError:
    pass
else:
    raise SystemExit("vbprune is importable")
from transformers import AutoModel, AutoModelForImageClassification
results = {}
for folder in sys.argv[1:]:
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    images = torch.load(folder + "/images.pt")
    with torch.no_grad():
        out = model.eval()(images).logits
    difference = (out - torch.load(folder + "/logits.pt")).abs().max().item()
    # the trunk (AutoModel) of the same checkpoint, where auto_map names one (not where
    # the base model cannot hold the weights, as for Perceiver): every weight the
    # classifier's trunk has
    results[folder] = difference
    if "AutoModel" not in (model.config.auto_map or {}) or model.base_model is model:
        continue
    trunk, info = AutoModel.from_pretrained(folder, trust_remote_code=True,
                                            output_loading_info=True)
    base = model.base_model.state_dict()
    if set(info["missing_keys"]) & set(base):
        difference = float("inf")
    for key, value in trunk.state_dict().items():
        if key in base:
            difference = max(difference, (value - base[key]).abs().max().item())
    results[folder] = difference
print(json.dumps(results))
"""


def stock_differences(saved: dict, tmp_path) -> dict[str, float]:
    """Load each saved folder with stock transformers in one fresh process where vbprune
    cannot be imported; the largest logit difference from its model, by folder (infinite
    if its AutoModel trunk misses a weight the classifier's trunk has, else also the
    largest difference between the two trunks' weights).

    Args:
        saved: folder -> (the in-memory model it was saved from, a batch it takes).
    """
    for folder, (model, images) in saved.items():
        torch.save(images, folder / "images.pt")
        torch.save(logits(model, images), folder / "logits.pt")
    folders = [str(folder) for folder in saved]
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"))  # remote code cached there
    done = subprocess.run([sys.executable, "-c", STOCK_LOAD, *folders], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    differences = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(differences) == set(folders)
    return differences


@pytest.mark.slow
def test_transformers_folders_load_with_stock_transformers_only(images, tmp_path):
    """Every family loads in stock transformers. save_pretrained writes the old
    (transformers 4) key names, which the pruned classes rename on load as the stock ones
    do (``attention.attention.query`` -> ``attention.q_proj``); a checkpoint written with
    transformers 5's in-memory names (a raw ``state_dict``) loads too."""
    from safetensors.torch import save_file

    saved = {}
    for family in ("hf-vit", "hf-deit", "hf-swin", "hf-convnext", "hf-convnextv2"):
        model = pruned(family, images)
        folder = vbprune.save_pretrained(model, tmp_path / family)
        saved[folder] = model, images
        if family in ("hf-vit", "hf-swin"):  # the families whose names transformers 5 renamed
            on_disk = set(safetensors_keys(folder / "model.safetensors"))
            assert any(".attention.attention.query." in k or ".self.query." in k
                       for k in on_disk), family  # fmt: skip
            assert on_disk != set(model.state_dict())
            renamed = tmp_path / f"{family}-new-names"
            shutil.copytree(folder, renamed)
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, renamed / "model.safetensors", metadata={"format": "pt"})
            saved[renamed] = model, images
    differences = stock_differences(saved, tmp_path)
    assert all(d < 1e-6 for d in differences.values()), differences


def test_weights_that_do_not_match_the_recorded_widths(images, tmp_path):
    for family in ("timm-swin", "hf-swin"):
        folder = vbprune.save_pretrained(pruned(family, images), tmp_path / family)
        config = json.loads((folder / "config.json").read_text())
        if "mlp_widths" in config:  # transformers: widths by site
            config["mlp_widths"]["swin.encoder.layers.1.blocks.0.mlp"] += 3
        else:
            config["vbprune"]["widths"]["layers.1.blocks.0.mlp"] += 3
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="do not match|layers.1.blocks.0.mlp"):
            vbprune.from_pretrained(folder)


def test_missing_weights_unknown_family_and_newer_keys(images, tmp_path):
    folder = vbprune.save_pretrained(pruned("timm-vit", images), tmp_path / "vit")
    config = json.loads((folder / "config.json").read_text())

    config["vbprune"]["written_by_the_future"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="written_by_the_future"):
        vbprune.from_pretrained(folder)

    config["architecture"] = "no_such_net"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown timm architecture"):
        vbprune.from_pretrained(folder)

    hf = vbprune.save_pretrained(pruned("hf-vit", images), tmp_path / "hf")
    hf_config = json.loads((hf / "config.json").read_text())
    hf_config["model_type"] = "vbprune_no_such_family"
    (hf / "config.json").write_text(json.dumps(hf_config))
    with pytest.raises(ValueError, match="unknown model type 'vbprune_no_such_family'"):
        vbprune.from_pretrained(hf)

    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="holds no model weights"):
        vbprune.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        vbprune.from_pretrained(tmp_path)


def test_save_refuses_a_non_empty_folder_and_unknown_classes(images, tmp_path):
    model = pruned("timm-vit", images)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        vbprune.save_pretrained(model, tmp_path / "busy")
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep"
    from timm.models.swin_transformer import SwinTransformer

    bare = SwinTransformer(
        img_size=32,
        patch_size=4,
        window_size=4,
        embed_dim=16,
        depths=(1,),
        num_heads=(1,),
        num_classes=3,
    )
    with pytest.raises(ValueError, match="timm.create_model"):
        vbprune.save_pretrained(bare, tmp_path / "bare")
    assert not (tmp_path / "bare").exists()


def test_cli_output_loads_back_by_folder(prune_output):
    from vbprune.io.model_specs import load_model

    out = prune_output
    report = json.loads((out / "report.json").read_text())
    for model in (vbprune.from_pretrained(out / "model"), load_model(str(out / "model"))):
        widths = {s.name: s.width for s in vbprune.find_mlp_sites(model)}
        assert widths == report["widths"]
        assert vbprune.count_params(model) == report["params"]["after"]


def test_architecture_only_is_built_at_the_recorded_widths(prune_output, images, tmp_path):
    from vbprune.io.model_specs import load_model

    saved = {"timm": prune_output / "model"}
    saved["hf"] = vbprune.save_pretrained(pruned("hf-vit", images), tmp_path / "hf")
    for kind, folder in saved.items():
        trained = vbprune.from_pretrained(folder)
        bare = load_model(str(folder), pretrained=False)
        widths = {s.name: s.width for s in vbprune.find_mlp_sites(trained)}
        assert {s.name: s.width for s in vbprune.find_mlp_sites(bare)} == widths, kind
        assert vbprune.count_params(bare) == vbprune.count_params(trained), kind
        assert any(  # random weights: nothing was read
            not torch.equal(a, b)
            for a, b in zip(trained.state_dict().values(), bare.state_dict().values())
        ), kind


def test_loaded_models_save_again_with_their_metadata(images, tmp_path):
    for family in ("timm-swin", "hf-vit"):
        model = pruned(family, images)
        first = vbprune.save_pretrained(  # options as vbprune 0.1 wrote them: loose
            model, tmp_path / f"{family}-1", metadata={"ratio": 0.4, "scope": "global"}
        )
        loaded = vbprune.from_pretrained(first)
        vbprune.prune_model(loaded, vbprune.VarianceCalibrator(loaded).run([images]), 0.2)
        second = vbprune.save_pretrained(
            loaded, tmp_path / f"{family}-2", metadata={"pruning": {"scope": "layer"}}
        )
        again = vbprune.from_pretrained(second)
        assert (logits(loaded, images) - logits(again, images)).abs().max() < 1e-6
        section = json.loads((second / "config.json").read_text())["vbprune"]
        assert section["pruning"] == {"ratio": 0.4, "scope": "layer"}  # kept, overridden
        widths = {s.name: s.width for s in vbprune.find_mlp_sites(loaded)}
        assert section["widths"] == widths


def test_bfloat16_timm_checkpoint_stays_bfloat16(images, tmp_path):
    model = pruned("timm-vit", images).to(torch.bfloat16)
    loaded = vbprune.from_pretrained(vbprune.save_pretrained(model, tmp_path / "bf16"))
    assert next(loaded.parameters()).dtype == torch.bfloat16
    batch = images.to(torch.bfloat16)
    assert torch.equal(logits(model, batch), logits(loaded, batch))


def test_fold_created_bias_round_trips(images, tmp_path):
    import timm

    args = dict(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=10,
        proj_bias=False,
    )
    model = randomize(timm.create_model("vit_tiny_patch16_224", pretrained=False, **args))
    assert vbprune.find_mlp_sites(model)[0].fc2.bias is None
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, 0.5)  # the fold gives fc2 a bias
    folder = vbprune.save_pretrained(model, tmp_path / "nobias", model_args=args)
    loaded = vbprune.from_pretrained(folder)
    assert torch.equal(logits(model, images), logits(loaded, images))


def test_unrebuildable_timm_model_is_refused_at_save(images, tmp_path):
    import timm

    from testing_utils import TINY_TIMM_VIT_ARGS

    # built from its class, not by timm.create_model: timm records no arguments, and
    # num_classes and img_size read off the model do not rebuild it
    model = randomize(timm.models.vit_tiny_patch16_224(pretrained=False, **TINY_TIMM_VIT_ARGS))
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), ratio=0.4)
    with pytest.raises(ValueError, match="pass the model_args it was created with"):
        vbprune.save_pretrained(model, tmp_path / "guess")
    assert not (tmp_path / "guess").exists()


def test_transformers_checkpoint_with_a_missing_weight(images, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = vbprune.save_pretrained(pruned("hf-vit", images), tmp_path / "vit")
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in weights if "attention" in k)
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="weights do not match the model"):
        vbprune.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        vbprune.from_pretrained(tmp_path / "no" / "such")


def test_a_pruned_transformers_config_describes_the_pruned_model(images, tmp_path):
    """After pruning (again), the config records the current widths: even transformers'
    own save_pretrained writes a folder that vbprune rebuilds exactly."""
    first = vbprune.save_pretrained(pruned("hf-vit", images), tmp_path / "first")
    model = vbprune.from_pretrained(first)  # the pruned class; config holds the widths
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.3)
    widths = {s.name: s.width for s in vbprune.find_mlp_sites(model)}
    assert model.config.mlp_widths == widths
    model.save_pretrained(tmp_path / "plain")  # no vbprune section, no modeling files
    from vbprune.io.model_specs import load_model

    again = load_model(str(tmp_path / "plain"))
    assert torch.equal(logits(again, images), logits(model, images))


def pruned_saved(family: str, images, folder):
    torch.manual_seed(0)
    model = randomize(FAMILIES[family]())
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), ratio=0.5)
    vbprune.save_pretrained(model, folder)
    return model


def test_timm_keywords_pass_through_from_pretrained(images, tmp_path):
    model = pruned_saved("timm-vit", images, tmp_path / "m")
    five = vbprune.from_pretrained(tmp_path / "m", num_classes=5, drop_path_rate=0.1)
    assert five.head.out_features == 5 and five(images).shape == (4, 5)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    loaded = five.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in kept.items())  # every other weight
    assert five.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    assert [s.width for s in vbprune.find_mlp_sites(five)] == [
        s.width for s in vbprune.find_mlp_sites(model)]  # fmt: skip
    headless = vbprune.from_pretrained(tmp_path / "m", num_classes=0)
    assert headless(images).shape == (4, model.num_features)
    features = vbprune.from_pretrained(tmp_path / "m", features_only=True)
    assert [f.shape[0] for f in features(images)] == [4, 4]  # one map per block
    # another input size: the position embedding is resampled as timm's loading does
    bigger = vbprune.from_pretrained(tmp_path / "m", img_size=64)
    assert bigger.pos_embed.shape[1] == 1 + (64 // 8) ** 2
    assert bigger(torch.nn.functional.interpolate(images, size=(64, 64))).shape == (4, 10)
    assert torch.equal(bigger.blocks[0].mlp.fc1.weight, model.blocks[0].mlp.fc1.weight)
    # saved again, it records what it is now, without the training-only drop rate
    again = vbprune.save_pretrained(five, tmp_path / "five")
    recorded = json.loads((again / "config.json").read_text())["model_args"]
    assert recorded["num_classes"] == 5 and "drop_path_rate" not in recorded


def test_transformers_num_labels_change_with_ignore_mismatched_sizes(images, tmp_path):
    model = pruned_saved("hf-vit", images, tmp_path / "m")
    with pytest.raises(vbprune.CheckpointError, match="ignore_mismatched_sizes=True"):
        vbprune.from_pretrained(tmp_path / "m", num_labels=5)
    five = vbprune.from_pretrained(tmp_path / "m", num_labels=5, ignore_mismatched_sizes=True)
    assert five.config.num_labels == 5 and five(images).logits.shape == (4, 5)
    loaded = five.state_dict()
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    assert all(torch.equal(loaded[k], v) for k, v in kept.items())


@pytest.mark.parametrize("family", ["hf-vit", "hf-swin", "hf-convnext", "hf-convnextv2"])
def test_from_config_of_a_pruned_config_initialises_every_weight(images, tmp_path, family):
    """Stock transformers (trust_remote_code) builds the pruned widths, initialised like
    the stock model: the same weight spread, zero biases, no leftover memory."""
    from transformers import AutoConfig, AutoModelForImageClassification

    model = pruned_saved(family, images, tmp_path / "m")
    config = AutoConfig.from_pretrained(tmp_path / "m", trust_remote_code=True)
    torch.manual_seed(1)
    built = AutoModelForImageClassification.from_config(config, trust_remote_code=True)
    assert {s.name: s.width for s in vbprune.find_mlp_sites(built)} == {
        s.name: s.width for s in vbprune.find_mlp_sites(model)}  # fmt: skip
    reference = FAMILIES[family]()  # the stock model, unpruned, freshly initialised
    spread = {n: p.std() for n, p in reference.named_parameters() if p.dim() > 1}
    for site in vbprune.find_mlp_sites(built):
        for layer in (site.fc1, site.fc2):
            weight = layer.weight.detach()
            assert torch.isfinite(weight).all() and weight.abs().max() < 10
            name = next(n for n, p in built.named_parameters() if p is layer.weight)
            assert weight.std() == pytest.approx(float(spread[name]), rel=0.5), name
            if layer.bias is not None:
                assert not layer.bias.any(), name


TRUNK_LOAD = r"""
import sys, json, torch
sys.modules["vbprune"] = None  # stock transformers only
from transformers import AutoModel, AutoModelForImageClassification
results = {}
for folder in sys.argv[1:]:
    images = torch.load(folder + "/images.pt")
    trunk, info = AutoModel.from_pretrained(folder, trust_remote_code=True,
                                            output_loading_info=True)
    with torch.no_grad():
        out = trunk.eval()(images).last_hidden_state
    results[folder] = {"trunk": (out - torch.load(folder + "/trunk.pt")).abs().max().item(),
                       "missing": sorted(info["missing_keys"])}
    # a new head for fine-tuning: every other weight loaded
    five, info = AutoModelForImageClassification.from_pretrained(
        folder, trust_remote_code=True, num_labels=5, ignore_mismatched_sizes=True,
        output_loading_info=True)
    with torch.no_grad():
        results[folder]["five"] = list(five.eval()(images).logits.shape)
    results[folder]["five_missing"] = sorted(info["missing_keys"])
    try:  # without trust_remote_code: the stock class, which must refuse the widths
        AutoModelForImageClassification.from_pretrained(folder)
        results[folder]["untrusted"] = "loaded"
    except Exception as error:
        results[folder]["untrusted"] = str(error)
print(json.dumps(results))
"""

BACKBONE_LOAD = r"""
import sys, json, torch
sys.modules["vbprune"] = None  # stock transformers only
from transformers import AutoBackbone
results = {}
for repo_id, folder in zip(sys.argv[1::2], sys.argv[2::2]):
    backbone, info = AutoBackbone.from_pretrained(repo_id, trust_remote_code=True,
                                                  output_loading_info=True)
    reference, state = torch.load(folder + "/state.pt"), backbone.state_dict()
    with torch.no_grad():
        maps = backbone.eval()(torch.load(folder + "/images.pt")).feature_maps
    results[repo_id] = {
        "difference": max((v - reference[k]).abs().max().item() for k, v in state.items()
                          if k in reference),
        "loaded": sum(k in reference for k in state), "missing": sorted(info["missing_keys"]),
        "total": len(state),
        "maps": [list(m.shape) for m in maps]}
print(json.dumps(results))
"""


def save_trunk_references(family: str, images, folder_root):
    """A pruned model saved, with the inputs, its trunk's output and its weights (also
    under the trunk's names without its prefix, as some backbones name them)."""
    model = pruned(family, images)
    folder = vbprune.save_pretrained(model, folder_root / family)
    with torch.no_grad():
        torch.save(getattr(model, model.base_model_prefix).eval()(images).last_hidden_state,
                   folder / "trunk.pt")  # fmt: skip
    return save_references(model, images, folder)


def save_references(model, images, folder):
    """The inputs and the weights of a saved transformers model, next to it."""
    torch.save(images, folder / "images.pt")
    prefix, state = f"{model.base_model_prefix}.", model.state_dict()
    # a backbone names the trunk's weights with the prefix (Swin) or without (ConvNeXt-V2)
    stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    torch.save({**state, **stripped}, folder / "state.pt")
    return folder


def run_stock(script: str, args: list[str], tmp_path) -> dict:
    env = dict(os.environ, HF_HOME=os.environ.get("HF_HOME", str(tmp_path / "hf_home")))
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pruned_trunk_loads_with_stock_automodel(images, tmp_path):
    """AutoModel (the trunk without head) of a pruned classifier's checkpoint, in a fresh
    process where vbprune cannot be imported; ViT needs transformers 5's key renaming.
    Without trust_remote_code, stock transformers refuses the checkpoint."""
    families = ("hf-vit", "hf-deit", "hf-swin", "hf-convnext", "hf-convnextv2")
    folders = [str(save_trunk_references(f, images, tmp_path)) for f in families]
    results = run_stock(TRUNK_LOAD, folders, tmp_path)
    for folder in folders:
        entry = results[folder]
        assert entry["trunk"] < 1e-5, (folder, entry)
        # nothing newly initialised but what the classifier never had (ViT's pooler)
        assert all(k.startswith("pooler.") for k in entry["missing"]), (folder, entry)
        assert entry["five"] == [4, 5] and entry["five_missing"] == [], (folder, entry)
        assert "mismatched_sizes" in entry["untrusted"], (folder, entry)  # never half-loaded


@pytest.mark.slow
def test_pruned_backbone_loads_from_the_hub_with_stock_autobackbone(images, tmp_path, local_hub):
    """AutoBackbone of a pruned Swin / ConvNeXt-V2 pushed to a Hub (transformers 5.24's
    AutoBackbone asks the Hub whether a repo exists even for a local folder, so a local
    folder fails for stock models too)."""
    args = []
    for family in ("hf-swin", "hf-convnextv2"):  # every family: test_layouts.py
        folder = save_trunk_references(family, images, tmp_path)
        vbprune.push_folder(folder, f"tester/{family}")
        args += [f"tester/{family}", str(folder)]
    results = run_stock(BACKBONE_LOAD, args, tmp_path)
    for repo_id in args[::2]:
        entry = results[repo_id]
        assert entry["difference"] == 0.0 and entry["loaded"] > 10, (repo_id, entry)
        # every weight is the checkpoint's but the backbone's own output norms, which a
        # classifier never has (as for stock models)
        assert all(k.startswith("hidden_states_norms.") for k in entry["missing"]), entry
        assert entry["loaded"] + len(entry["missing"]) == entry["total"], (repo_id, entry)
        assert entry["maps"], repo_id


TIMM_NATIVE = r"""
import sys, json, torch
order, folder, source = sys.argv[1], sys.argv[2], sys.argv[3]
resize = json.loads(sys.argv[4])
if order == "no-vbprune":
    sys.modules["vbprune"] = None
    import timm
    try:
        timm.create_model(source, pretrained=True)
    except RuntimeError as error:
        print(json.dumps({"error": str(error)}))
    raise SystemExit(0)
if order == "vbprune-first":
    import importlib.util
    import vbprune
    for name in [n for n in sys.modules if n.startswith("vbprune")]:
        del sys.modules[name]  # a second copy of vbprune, as a reload or autoreload makes
    import vbprune
    importlib.util.find_spec("timm")  # a probe, as transformers' is_timm_available makes
    import transformers
    import timm
else:
    import timm
    import vbprune
images = torch.load(folder + "/images.pt")
model = timm.create_model(source, pretrained=True).eval()
fresh = timm.create_model(source, pretrained=False)
five = timm.create_model(source, pretrained=True, num_classes=5, drop_path_rate=0.1)
features = timm.create_model(source, pretrained=True, features_only=True).eval()
# the same features of the stock, unpruned architecture, for comparison (the tiny ViT
# is too shallow for timm's default of its last 3 blocks: the same indices are asked)
config = json.load(open(folder + "/config.json"))["model_args"]
stock = timm.create_model(config["base_architecture"], features_only=True,
                          out_indices=tuple(features.feature_info.out_indices),
                          **{k: v for k, v in config.items() if not k.startswith(
                             ("base_architecture", "mlp_"))}).eval()
with torch.no_grad():
    out = {
        "difference": (model(images) - torch.load(folder + "/logits.pt")).abs().max().item(),
        "widths": [s.width for s in vbprune.find_mlp_sites(fresh)],
        "five": list(five.eval()(images).shape),
        "drop_path": max(m.drop_prob for m in five.modules()
                         if type(m).__name__ == "DropPath"),
        "body_equal": all(torch.equal(v, model.state_dict()[k])
                          for k, v in five.state_dict().items()
                          if not k.startswith(("head.", "head_dist."))),
        "maps": [list(m.shape) for m in features(images)],
        "stock_maps": [list(m.shape) for m in stock(images)],
        "features": [type(features).__name__, features.feature_info.channels(),
                     features.feature_info.reduction()],
        "stock_features": [type(stock).__name__, stock.feature_info.channels(),
                           stock.feature_info.reduction()],
    }
    if resize:  # another input size: the family's checkpoint filter resamples
        resized = timm.create_model(source, pretrained=True, **resize).eval()
        side = resize["img_size"]
        big = torch.nn.functional.interpolate(images, size=(side, side))
        state = model.state_dict()
        out["resized"] = list(resized(big).shape)
        out["resampled"] = sorted(k for k, v in resized.state_dict().items()
                                  if k in state and v.shape != state[k].shape)
        out["resized_equal"] = all(torch.equal(v, state[k])
                                   for k, v in resized.state_dict().items()
                                   if k in state and v.shape == state[k].shape
                                   and "relative_position" not in k)
print(json.dumps(out))
"""

# another input size per family (a Swin window to match), with what must be resampled
RESIZE = {
    "timm-vit": ({"img_size": 64}, ["pos_embed"]),
    "timm-swin": ({"img_size": 64, "window_size": 8}, "relative_position_bias_table"),
}


@pytest.mark.parametrize(
    "order, family",
    [("vbprune-first", "timm-vit"), ("timm-first", "timm-vit"), ("no-vbprune", "timm-vit"),
     ("hf-hub", "timm-vit"), ("vbprune-first", "timm-deit-distilled"),
     ("vbprune-first", "timm-swin"), ("vbprune-first", "timm-convnext"),
     ("vbprune-first", "timm-convnextv2")],
)  # fmt: skip
def test_pruned_timm_models_load_with_timm_create_model(images, tmp_path, order, family, request):
    """timm.create_model on a pruned checkpoint, in a fresh process, as timm's users call
    it: from a local folder (vbprune imported before or after timm, or not at all) or from
    a Hub repo (``hf-hub:``), with pretrained=True/False and timm's keyword arguments;
    features as the stock family gives them, and another input size."""
    model = pruned(family, images)
    folder = vbprune.save_pretrained(model, tmp_path / "m")
    torch.save(images, folder / "images.pt")
    torch.save(logits(model, images), folder / "logits.pt")
    source = f"local-dir:{folder}"
    if order == "hf-hub":
        request.getfixturevalue("local_hub")
        vbprune.push_folder(folder, "tester/pruned-vit")
        source, order = "hf-hub:tester/pruned-vit", "vbprune-first"
    resize, resampled = RESIZE.get(family, ({}, None))
    done = subprocess.run(
        [sys.executable, "-c", TIMM_NATIVE, order, str(folder), source, json.dumps(resize)],
        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if order == "no-vbprune":  # timm alone: the error names what is missing, no mismatch
        assert "Unknown model (vbprune_pruned)" in result["error"]
        return
    assert result["difference"] < 1e-6  # timm loads every weight at the recorded widths
    assert result["widths"] == [s.width for s in vbprune.find_mlp_sites(model)]
    assert result["five"] == [4, 5] and result["body_equal"]  # timm's new head
    assert result["drop_path"] == pytest.approx(0.1)  # the deepest block's, as timm sets it
    # features_only: the stock family's wrapper, shapes, layout (NHWC for Swin), channels
    assert result["maps"] and result["maps"] == result["stock_maps"]
    assert result["features"] == result["stock_features"]
    stages = len(model.feature_info) if "swin" in family or "convnext" in family else 2
    assert len(result["maps"]) == stages  # every stage, or the (2) blocks of the tiny ViT
    if resize:
        assert result["resized"] == [4, model.num_classes]
        if isinstance(resampled, list):
            assert result["resampled"] == resampled
        else:  # every window's table
            assert result["resampled"] and all(resampled in k for k in result["resampled"])
        assert result["resized_equal"]


def test_a_model_timm_built_from_a_pruned_checkpoint_saves_again(images, tmp_path):
    import timm

    model = pruned("timm-vit", images)
    folder = vbprune.save_pretrained(model, tmp_path / "m")
    rebuilt = timm.create_model(f"local-dir:{folder}", pretrained=True)
    again = vbprune.save_pretrained(rebuilt, tmp_path / "again")
    assert torch.equal(logits(vbprune.from_pretrained(again), images), logits(model, images))
