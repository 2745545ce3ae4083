"""Every row of the layout table on a small model of every family it covers: the probe
(constant neurons removed without output change where the site is exact), pruning at
0.5 (forward, parameter count), and save/reload giving identical outputs."""

from __future__ import annotations

import json

import pytest
import torch

import vbprune
from layout_zoo import HF_ZOO, TIMM_INPUT, TIMM_ZOO
from test_checkpoint import BACKBONE_LOAD, run_stock, save_references, stock_differences
from vbprune.architectures.layouts import LAYOUTS
from vbprune.evaluation import probe as probe_module
from vbprune.evaluation.probe import probe

# bias-free fc2 followed by BatchNorm: the fold goes into its running mean, no bias
FC2_BATCHNORM = {"levit_128s", "levit_conv_128s", "repvit_m0_9", "shvit_s1", "levit",
                 "mobilenetv2_050", "mobilenetv4_conv_small", "efficientvit_b0"}  # fmt: skip
APPROXIMATE = {"eva02_base_patch14_224", "convnextv2_atto", "convnextv2"}  # LN, GRN


def build(key: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A small model of the zoo (random weights) and a batch of 2 images it takes."""
    torch.manual_seed(0)
    if key in TIMM_ZOO:
        import timm

        args = TIMM_ZOO[key]
        model = timm.create_model(key, pretrained=False, **args)
        size = TIMM_INPUT.get(key) or args.get("img_size") or 64
    else:
        import transformers

        name, args = HF_ZOO[key]
        model_class = getattr(transformers, name)
        model = model_class(model_class.config_class(**args))
        size = args.get("image_size", 32)
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    return model.eval(), torch.randn(2, 3, *size)


ZOO = [*TIMM_ZOO, *HF_ZOO]


def test_every_row_has_a_model_in_the_zoo():
    sites = [site for key in ZOO for site in vbprune.find_mlp_sites(build(key)[0])]

    def covers(site: vbprune.MLPSite, row) -> bool:  # rows of one class differ in fc2
        return site.layout in {f"{row.library}/{c}" for c in row.classes} and site.paths[
            "fc2"
        ].endswith(row.fc2)

    missing = [
        f"{row.key} ({row.fc2})" for row in LAYOUTS if not any(covers(s, row) for s in sites)
    ]
    assert not missing, f"layout rows without a test model: {missing}"


@pytest.mark.parametrize("key", ZOO)
def test_probe_removes_constant_neurons_without_changing_exact_outputs(key):
    model, images = build(key)
    result = probe(model, images)
    assert result.removed > 0 and result.layouts
    assert result.exact == (key not in APPROXIMATE)
    assert result.passed, f"{key}: outputs moved by {result.exact_difference:.2e}"
    if result.exact_difference is not None:  # least squares: exact for constants too
        assert result.least_squares_difference <= result.tolerance, key
    if result.exact_difference is not None:  # the fold is what keeps the outputs
        assert result.no_fold_difference > 10 * max(result.exact_difference, 1e-7), key
    if not result.exact:  # the probe sees the coupling: the fold is only approximate
        assert result.approximate_difference > 1e-6


def removed_parameters(site: vbprune.MLPSite, removed: int) -> int:
    """Parameters one MLP loses when ``removed`` hidden neurons go, from its layers."""
    width = site.width
    per_neuron = site.fc2.weight.numel() // width  # a column of fc2
    for layer in (site.fc1, site.gate):
        if layer is not None:
            rows = layer.weight.shape[0]
            per_neuron += (layer.weight.numel() + (layer.bias.numel() if layer.bias is not None
                           else 0)) // rows * (2 if site.packed else 1)  # fmt: skip
    for module in site.channels:
        per_neuron += sum(p.numel() for p in module.parameters(recurse=False)) // width
    return removed * per_neuron


def macs_per_neuron(model: torch.nn.Module, images: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates one hidden neuron of each MLP costs per image, from its layers
    and the positions they see: fc1 (and gate) rows at fc1's positions, the fc2 column
    and depthwise kernels at fc2's (a strided depthwise conv sits between; norms and
    activations are element-wise: not MACs)."""
    sites = vbprune.find_mlp_sites(model)
    positions: dict[tuple[str, str], int] = {}

    def record(site, layer, key):
        def hook(module, args):  # one image: every position of the input
            positions[site.name, key] = args[0].numel() // layer.weight.shape[1]

        return layer.register_forward_pre_hook(hook)

    handles = [record(s, s.fc1, "fc1") for s in sites] + [record(s, s.fc2, "fc2") for s in sites]
    with torch.no_grad():
        model(images[:1])
    for handle in handles:
        handle.remove()
    costs = {}
    for site in sites:
        projections = 1 if site.gate is None and not site.packed else 2
        fc1 = site.fc1.weight[0].numel() * projections * positions[site.name, "fc1"]
        per_position = site.fc2.weight.shape[0] + sum(
            m.weight[0].numel() for m in site.channels
            if isinstance(m, torch.nn.modules.conv._ConvNd)
        )  # fmt: skip
        costs[site.name] = fc1 + per_position * positions[site.name, "fc2"]
    return costs


@pytest.mark.parametrize("key", ZOO)
def test_prune_at_half_then_save_and_reload(key, tmp_path):
    model, images = build(key)
    sites = vbprune.find_mlp_sites(model)
    before = vbprune.count_params(model)
    macs_before = vbprune.count_macs(model, images.shape[1:])
    per_neuron = macs_per_neuron(model, images)
    stats = vbprune.VarianceCalibrator(model).run([images])
    result = vbprune.prune_model(model, stats, ratio=0.5)
    assert bool(result.approximate_sites) == (key in APPROXIMATE)
    assert result.num_pruned == pytest.approx(0.5 * sum(result.original_widths.values()), abs=1)
    expected = sum(
        removed_parameters(s, result.original_widths[s.name] - result.widths[s.name])
        for s in sites  # measured on the pruned sites: per-neuron counts are width-free
    )
    dense = dict(build(key)[0].named_parameters())
    created_biases = sum(  # the fold gives a bias-free fc2 without a BatchNorm a bias
        s.fc2.weight.shape[0] for s in vbprune.find_mlp_sites(model)
        if s.fc2.bias is not None and f"{s.paths['fc2']}.bias" not in dense
    )  # fmt: skip
    assert created_biases == 0 or key not in FC2_BATCHNORM
    assert before - vbprune.count_params(model) == expected - created_biases
    removed_macs = sum(  # counting sees every removed MLP multiply-accumulate, no more
        per_neuron[name] * (width - result.widths[name])
        for name, width in result.original_widths.items()
    )
    assert macs_before - vbprune.count_macs(model, images.shape[1:]) == removed_macs
    with torch.no_grad():
        out = model(images)
    out = out if isinstance(out, torch.Tensor) else out.logits
    assert torch.isfinite(out).all()
    args = TIMM_ZOO.get(key)
    folder = vbprune.save_pretrained(model, tmp_path / "model", model_args=args)
    loaded = vbprune.from_pretrained(folder)
    saved, read = model.state_dict(), loaded.state_dict()
    assert saved.keys() == read.keys() and all(torch.equal(saved[k], read[k]) for k in saved)
    with torch.no_grad():
        again = loaded(images)
    again = again if isinstance(again, torch.Tensor) else again.logits
    # same weights; kernels may round differently for new allocations (seen: 2e-10)
    assert torch.allclose(out, again, rtol=0, atol=1e-6)


@pytest.mark.parametrize("key", ["repvit_m0_9", "shvit_s1"])
def test_fold_behind_batchnorm_survives_conv_bn_fusion(key):
    """A bias-free fc2 followed by BatchNorm takes the fold in the BatchNorm's running
    mean: no bias appears, and timm's deployment fusion (conv + BN) keeps it."""
    from timm.utils.model import reparameterize_model

    model, images = build(key)
    with torch.no_grad():
        probe_module._randomize(model, 0)  # BatchNorm statistics that matter
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.5)
    assert all(site.fc2.bias is None for site in vbprune.find_mlp_sites(model))
    with torch.no_grad():
        pruned = model(images)
        fused = reparameterize_model(model)(images)
    assert (fused - pruned).abs().max() <= 1e-5 * pruned.abs().max()


def test_renamed_checkpoint_keys_load_into_every_weight(tmp_path):
    """transformers 5 renames keys on save and load (DINOv2's SwiGLU gate and value are
    packed as ``weights_in`` on disk): a pruned model must come back with every weight,
    none re-initialised."""
    from safetensors.torch import load_file

    model, images = build("dinov2-swiglu")
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.5)
    folder = vbprune.save_pretrained(model, tmp_path / "dinov2")
    on_disk = load_file(folder / "model.safetensors")
    assert any("weights_in" in key for key in on_disk)  # renamed: no in-memory name
    loaded = vbprune.from_pretrained(folder)
    saved, read = model.state_dict(), loaded.state_dict()
    assert saved.keys() == read.keys() and all(torch.equal(saved[k], read[k]) for k in saved)


@pytest.mark.slow
def test_pruned_transformers_models_load_with_stock_transformers(tmp_path):
    saved = {}
    for key in HF_ZOO:
        model, images = build(key)
        vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.5)
        saved[vbprune.save_pretrained(model, tmp_path / key)] = model, images
    # every family's base model (AutoModel) holds the weights, but Perceiver's, stock or
    # pruned: its classifier's trunk is built around the classifier's preprocessor
    auto_maps = {f.name: json.loads((f / "config.json").read_text())["auto_map"] for f in saved}
    without_trunk = {name for name, auto_map in auto_maps.items() if "AutoModel" not in auto_map}
    assert without_trunk == {"perceiver"}
    differences = stock_differences(saved, tmp_path)  # classifier and trunk
    assert all(d < 1e-6 for d in differences.values()), differences


@pytest.mark.slow
def test_pruned_backbones_of_every_family_load_with_stock_autobackbone(tmp_path, local_hub):
    """Every zoo family with a transformers backbone: its pruned checkpoint, pushed to a
    (local) Hub, loads with stock AutoBackbone where vbprune cannot be imported, with
    every weight the checkpoint's but the backbone's own output norms."""
    args = []
    for key in HF_ZOO:
        model, images = build(key)
        vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.5)
        folder = vbprune.save_pretrained(model, tmp_path / key)
        if "AutoBackbone" in json.loads((folder / "config.json").read_text())["auto_map"]:
            save_references(model, images, folder)
            vbprune.push_folder(folder, f"tester/{key}")
            args += [f"tester/{key}", str(folder)]
    assert len(args) >= 2 * 6  # Swin, Swin V2, ConvNeXt (V2), DINOv2, BEiT, ...
    results = run_stock(BACKBONE_LOAD, args, tmp_path)
    for repo_id in args[::2]:
        entry = results[repo_id]
        assert entry["difference"] == 0.0, (repo_id, entry)
        assert all(k.startswith("hidden_states_norms.") for k in entry["missing"]), entry
        assert entry["loaded"] + len(entry["missing"]) == entry["total"], (repo_id, entry)
        assert entry["maps"], repo_id
