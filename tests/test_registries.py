"""Criteria and compensations are tables: every registered pair runs on every kind of MLP
layout in the zoo, and a new criterion or compensation is one registered function that
the config, the command line, the sweep and the model card then know."""

from __future__ import annotations

import copy
import dataclasses
import functools

import pytest
import torch

import vbprune
from test_layouts import build
from vbprune.core.compensation import COMPENSATIONS
from vbprune.core.criteria import CRITERIA
from vbprune.core.units import Correction

# one zoo model per kind of MLP layout, and how to recognise that kind on its sites
LAYOUT_KINDS = {
    "plain": ("deit3_small_patch16_224", lambda s: s.gate is None and not s.packed),
    "gated": ("aimv2_large_patch14_224", lambda s: s.gate is not None),
    "gated (transformers)": ("dinov2-swiglu", lambda s: s.gate is not None),
    "packed gated": ("eva02_tiny_patch14_224", lambda s: s.packed),
    "batchnorm after fc2": ("levit_128s", lambda s: s.fc2_norm is not None),
    "1x1 conv": ("poolformer", lambda s: s.is_conv),
    "depthwise conv between": (
        "pvt_v2_b0",
        lambda s: any(vbprune.core.surgery.is_depthwise(m) for m in s.channels),
    ),
}
RATIO = 0.5


@functools.cache
def calibrated(key: str):
    """A zoo model, a batch it takes, its statistics with covariance and its output."""
    model, images = build(key)
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    with torch.no_grad():
        output = vbprune.architectures.interface.logits_of(model(images))
    return model, images, stats, output


@pytest.mark.parametrize("compensate", list(COMPENSATIONS))
@pytest.mark.parametrize("criterion", list(CRITERIA))
@pytest.mark.parametrize("kind", list(LAYOUT_KINDS))
def test_every_criterion_and_compensation_runs_on_every_layout_kind(kind, criterion, compensate):
    key, is_kind = LAYOUT_KINDS[kind]
    original, images, stats, output = calibrated(key)
    model = copy.deepcopy(original)
    sites = vbprune.find_mlp_sites(model)
    assert all(is_kind(site) for site in sites), f"{key} is not a {kind} model"
    total = sum(site.width for site in sites)

    result = vbprune.prune_model(
        model, stats, ratio=RATIO, criterion=criterion, compensate=compensate
    )

    # widths: what the result says is what every layer of every site now has
    assert result.widths == {site.name: site.width for site in sites}
    for site in sites:
        width = result.widths[site.name]
        rows = 2 * width if site.packed else width
        assert site.fc1.weight.shape[0] == rows
        assert site.gate is None or site.gate.weight.shape[0] == width
        assert site.fc2.weight.shape[1] == width
        for module in site.channels:
            sizes = {getattr(module, a, None) for a in ("num_features", "out_channels")}
            assert width in sizes, (site.name, module)
    # counts: the global ranking removed floor(ratio * total) neurons
    assert result.num_pruned == int(RATIO * total) == total - sum(result.widths.values())
    assert result.config.criterion == criterion and result.config.compensate == compensate
    # a forward of the pruned model: same output shape, finite
    with torch.no_grad():
        pruned = vbprune.architectures.interface.logits_of(model(images))
    assert pruned.shape == output.shape and bool(torch.isfinite(pruned).all())


def test_magnitude_of_a_gated_neuron_counts_its_gate_and_value_rows():
    model, _, _, _ = calibrated("eva02_tiny_patch14_224")  # packed: rows j and j + H
    site = vbprune.find_mlp_sites(model)[0]
    scores = vbprune.magnitude_scores(model)[site.name]
    j, width = 3, site.width
    w1, w2 = site.fc1.weight.detach().double(), site.fc2.weight.detach().double()
    rows = w1[j].square().sum() + w1[j + width].square().sum()
    assert torch.isclose(scores[j], rows.sqrt() * w2[:, j].norm())
    separate, _, _, _ = calibrated("aimv2_large_patch14_224")  # gate and value layers
    site = vbprune.find_mlp_sites(separate)[0]
    scores = vbprune.magnitude_scores(separate)[site.name]
    gate, up = site.gate.weight.detach().double(), site.fc1.weight.detach().double()
    expected = (gate[j].square().sum() + up[j].square().sum()).sqrt()
    assert torch.isclose(scores[j], expected * site.fc2.weight.detach().double()[:, j].norm())


@pytest.fixture
def energy_criterion():
    """A criterion registered the way a user would: one decorated function."""

    @CRITERIA.register("energy", label="energy", help="mean square activation",
                       card="the neurons of lowest mean square activation")  # fmt: skip
    def energy(units):
        moments = units.moments()
        return units.per_unit(moments.var + moments.mean.square())

    yield energy
    CRITERIA.unregister("energy")


def test_a_registered_criterion_is_known_everywhere(energy_criterion, tmp_path):
    from vbprune.cli import build_parser
    from vbprune.evaluation.sweep import sweep, table

    model, _, stats, _ = calibrated("deit3_small_patch16_224")
    config = vbprune.PruningConfig(RATIO, criterion="energy")  # the config accepts it
    pruned = copy.deepcopy(model)
    result = vbprune.prune_model(pruned, stats, config=config)
    # it ranks by its own scores: the kept neurons of each site are its highest
    for name, entry in result.plan.sites.items():
        energy = stats[name].var + stats[name].mean.square()
        kept, dropped = energy[entry.keep], energy[entry.pruned]
        assert dropped.numel() == 0 or kept.min() >= dropped.max()
    parser = build_parser()
    args = parser.parse_args(["prune", "--model", "m", "--ratio", "0.5", "--output", "o",
                              "--criterion", "energy"])  # fmt: skip
    assert args.criterion == "energy"
    rows = sweep(model, stats, [RATIO], lambda m: 0.5, (3, 32, 32), criteria=["energy"],
                 folds=["mean"])  # fmt: skip
    assert "energy (mean fold)" in table(rows)
    metadata = {"base_model": "timm:deit3", "pruning": config.to_dict()}
    vbprune.save_pretrained(pruned, tmp_path / "model", metadata=metadata)
    card = " ".join((tmp_path / "model" / "README.md").read_text().split())
    assert "removes the neurons of lowest mean square activation (global ranking" in card


def test_a_registered_compensation_is_applied_to_fc2():
    @COMPENSATIONS.register("half-mean", label="half the mean", help="half the mean fold")
    def half_mean(units, removal):
        w2 = units.fc2_weight.double()
        return Correction(bias=0.5 * w2[:, removal.pruned] @ removal.mean)

    try:
        model, _, stats, _ = calibrated("deit3_small_patch16_224")
        half, full, none = (copy.deepcopy(model) for _ in range(3))
        biases = {}
        for copy_, name in ((half, "half-mean"), (full, "mean"), (none, "none")):
            vbprune.prune_model(copy_, stats, ratio=RATIO, compensate=name)
            biases[name] = vbprune.find_mlp_sites(copy_)[0].fc2.bias.detach().double()
        # the same neurons removed; the bias moved half as far as the mean fold moves it
        expected = (biases["mean"] + biases["none"]) / 2
        assert torch.allclose(biases["half-mean"], expected, atol=1e-6)
        assert vbprune.PruningConfig(RATIO, compensate="half-mean").needs_covariance is False
    finally:
        COMPENSATIONS.unregister("half-mean")


def test_a_failing_compensation_leaves_the_model_unchanged():
    @COMPENSATIONS.register("broken", label="broken", help="fails on the last site")
    def broken(units, removal):
        if units.name.endswith("1.mlp"):
            raise RuntimeError("no")
        return Correction(bias=torch.zeros(units.fc2_weight.shape[0], dtype=torch.float64))

    try:
        model, _, stats, _ = calibrated("deit3_small_patch16_224")
        copied = copy.deepcopy(model)
        with pytest.raises(RuntimeError, match="no"):
            vbprune.prune_model(copied, stats, ratio=RATIO, compensate="broken")
        state = model.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in copied.state_dict().items())
    finally:
        COMPENSATIONS.unregister("broken")


def test_unknown_names_are_refused_with_the_registered_ones():
    with pytest.raises(vbprune.ConfigError, match="criterion must be one of variance, random"):
        vbprune.PruningConfig(0.5, criterion="entropy")
    with pytest.raises(vbprune.ConfigError, match="compensate must be one of mean, ls, none"):
        vbprune.PruningConfig(0.5, compensate="median")
    with pytest.raises(vbprune.ConfigError, match="already registered"):
        CRITERIA.register("variance", label="v", help="v")(lambda units: None)
    config = vbprune.PruningConfig(0.5, criterion="obs", compensate="mean")
    assert config.needs_covariance and config.covariance_need() == "criterion"
    assert dataclasses.replace(config, criterion="variance").needs_covariance is False


def test_plan_pruning_without_the_model_refuses_a_criterion_that_reads_weights():
    _, _, stats, _ = calibrated("deit3_small_patch16_224")
    with pytest.raises(vbprune.ConfigError, match="reads the model's weights"):
        vbprune.plan_pruning(stats, RATIO, criterion="magnitude")
    model, _, _, _ = calibrated("deit3_small_patch16_224")
    scores = vbprune.score_neurons(model, stats, "magnitude")
    plan = vbprune.plan_pruning(stats, RATIO, criterion="magnitude", scores=scores)
    assert plan.num_pruned == int(RATIO * sum(s.mean.numel() for s in stats.values()))
