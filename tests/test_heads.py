"""Attention heads pruned with the MLP neurons: exact removal of constant heads in every
zoo family with attention, head statistics, budgets met by an independent count,
bit-exact round trips and loading without vbprune, and the refusals."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vbprune
from layout_zoo import TIMM_ZOO
from test_checkpoint import stock_differences
from test_layouts import ZOO
from test_layouts import build as build_zoo
from testing_utils import FAMILIES, logits, randomize
from vbprune.architectures.finder import find_attention_sites_and_problems
from vbprune.core.selection import PruningPlan, SitePlan


def build(key: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A zoo model (random weights made visible) and a batch of 2 images it takes."""
    model, images = build_zoo(key)
    return randomize(model), images


def _has_heads(key: str) -> bool:
    """Whether the zoo model's heads can be pruned (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_zoo(key)[0]
    sites, problems = find_attention_sites_and_problems(model)
    return bool(sites) and not problems and any(site.num_heads > 1 for site in sites)


WITH_HEADS = [key for key in ZOO if _has_heads(key)]


def make_constant(site: vbprune.AttentionSite, head: int, generator) -> bool:
    """Zero the value rows of ``head``: its output is its value bias whatever the
    attention (softmax rows sum to one). Returns whether that bias is non-zero."""
    rows = slice(head * site.head_dim, (head + 1) * site.head_dim)
    with torch.no_grad():
        site.value[rows] = 0.0
        for path in site.spec["inputs"]:
            layer = site.module.get_submodule(path)
            if (
                layer.weight.data_ptr()
                <= site.value.data_ptr()
                < layer.weight.data_ptr() + (layer.weight.numel() * layer.weight.element_size())
                and layer.bias is not None
            ):  # the value's bias: same block of rows
                offset = (site.value.data_ptr() - layer.weight.data_ptr()) // (
                    layer.weight.element_size() * layer.weight.shape[1]
                )
                bias = layer.bias[offset:][rows]
                bias.copy_(1.0 + torch.rand(bias.shape, generator=generator))
                return True
    return False


def plan_removing(model, stats, removed: dict[str, list[int]], compensate: str) -> PruningPlan:
    """A plan that keeps every neuron and removes the heads ``removed`` (site -> heads)."""
    config = vbprune.PruningConfig(ratio=0.0, heads=True, compensate=compensate)
    plan = PruningPlan(config)
    for site in vbprune.find_mlp_sites(model):
        plan.sites[site.name] = SitePlan(site.width, list(range(site.width)), [])
    for site in vbprune.find_attention_sites(model):
        gone = {c for h in removed.get(site.name, []) for c in
                range(h * site.head_dim, (h + 1) * site.head_dim)}  # fmt: skip
        keep = [c for c in range(site.width) if c not in gone]
        means = stats[site.name].mean[sorted(gone)].tolist()
        plan.sites[site.name] = SitePlan(site.width, keep, means, site.head_dim, "attention")
    return plan


@pytest.mark.parametrize("compensate", ["mean", "ls"])
@pytest.mark.parametrize("key", WITH_HEADS)
def test_constant_heads_are_removed_exactly(key, compensate):
    model, images = build(key)
    generator = torch.Generator().manual_seed(1)
    sites = [s for s in vbprune.find_attention_sites(model) if s.num_heads > 1][:2]
    removed, visible = {}, False
    for index, site in enumerate(sites):
        head = index % site.num_heads
        visible |= make_constant(site, head, generator)
        removed[site.name] = [head]
    before = logits(model, images)
    stats = vbprune.VarianceCalibrator(model, heads=True, covariance=compensate == "ls").run(
        [images[:1], images[1:]]
    )
    heads_before = vbprune.attention_heads(model)
    undo = build(key)[0]
    undo.load_state_dict(model.state_dict())

    vbprune.apply_plan(model, plan_removing(model, stats, removed, compensate), stats=stats)
    assert torch.allclose(logits(model, images), before, rtol=1e-4, atol=1e-5)
    expected = {name: n - len(removed.get(name, [])) for name, n in heads_before.items()}
    assert vbprune.attention_heads(model) == expected
    for site in vbprune.find_attention_sites(model):  # the shapes say so too
        assert site.proj.weight.shape[1] == expected[site.name] * site.head_dim
    if visible:  # without compensation the output moves: the check above is sensitive
        vbprune.apply_plan(undo, plan_removing(undo, stats, removed, "none"))
        assert not torch.allclose(logits(undo, images), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["timm-vit", "timm-swin", "hf-vit", "hf-swin"])
def test_head_statistics_equal_a_float64_reference_on_the_projection_input(family, images):
    model = randomize(FAMILIES[family]())
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [
        site.proj.register_forward_pre_hook(
            lambda module, args, name=site.name: seen.setdefault(name, []).append(
                args[0].detach().double().reshape(-1, args[0].shape[-1])
            )
        )
        for site in vbprune.find_attention_sites(model)
    ]
    with torch.no_grad():
        model(images[:2])
        model(images[2:])
    for handle in handles:
        handle.remove()
    stats = vbprune.VarianceCalibrator(model, heads=True, covariance=True).run(
        [images[:2], images[2:]]
    )
    for name, parts in seen.items():
        rows = torch.cat(parts)
        torch.testing.assert_close(stats[name].mean, rows.mean(0), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(stats[name].var, rows.var(0), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(stats[name].cov, rows.T.cov(), rtol=1e-5, atol=1e-8)


def independent_macs(model, images) -> int:
    """MACs counted by torch's FlopCounterMode alone, with eager attention (so the score
    and value products are plain matmuls, counted by torch itself)."""
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    if hasattr(model, "config"):
        model.config._attn_implementation = "eager"
        for module in model.modules():
            if getattr(module, "config", None) is not None:
                module.config._attn_implementation = "eager"
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(images[:1])
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("family", ["timm-vit", "timm-swin", "hf-vit", "hf-swin"])
@pytest.mark.parametrize("measure", ["target_macs", "target_params"])
def test_budgets_are_met_by_an_independent_count(family, images, measure):
    model = randomize(FAMILIES[family]())
    dense_macs, dense_params = independent_macs(model, images), vbprune.count_params(model)
    stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    # a low weight of heads: some heads surely go, so the heads' costs are checked too
    config = vbprune.PruningConfig(**{measure: 0.6}, heads=True, head_weight=0.05)
    result = vbprune.prune_model(model, stats, config=config)
    macs, params = independent_macs(model, images), vbprune.count_params(model)
    share = macs / dense_macs if measure == "target_macs" else params / dense_params
    assert share <= 0.6 + 1e-9
    assert result.budget["achieved"] == pytest.approx(share, abs=1e-5)
    assert result.budget["predicted"] == pytest.approx(share, abs=1e-5)  # costs are exact
    assert sum(result.heads.values()) < sum(result.original_heads.values())
    assert all(n >= 1 for n in result.heads.values())


def test_heads_never_lose_to_mlp_only_on_the_calibration_kl(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    config = vbprune.PruningConfig(target_macs=0.6, heads=True)
    result = vbprune.prune_model(model, stats, config=config, images=images)
    kl = result.budget["kl"]
    assert (
        min(kl.values())
        == kl[
            "mlp_only"
            if result.budget["head_weight"] is None
            else f"{result.budget['head_weight']:g}"
        ]
    )
    assert min(kl.values()) <= kl["mlp_only"]


def test_head_obs_scores_follow_the_group_least_squares_error():
    """The first head OBS removes is the one whose removal, with least squares, loses the
    least output energy (checked by brute force on a random covariance)."""
    from vbprune.core.least_squares import least_squares_correction, obs_group_scores

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, generator=generator, dtype=torch.float64)
    x[:, 4:8] += 2 * x[:, :4]  # head 1 predictable from head 0
    cov, w2 = x.T.cov(), torch.randn(6, 12, generator=generator, dtype=torch.float64)
    scores = obs_group_scores(w2, cov, 4, damping=0.0)

    def loss(head):
        pruned = torch.arange(head * 4, head * 4 + 4)
        keep = torch.tensor([c for c in range(12) if c not in pruned.tolist()])
        dw, _ = least_squares_correction(w2, keep, pruned, x.mean(0), cov, damping=0.0)
        w = w2.clone()
        w[:, keep] += dw
        w[:, pruned] = 0
        return float(torch.einsum("oi,ij,oj->", w2 - w, cov, w2 - w))  # E||(W2 - W) x||^2

    losses = [loss(h) for h in range(3)]
    assert int(scores.argmin()) == min(range(3), key=losses.__getitem__)
    assert scores.min() == pytest.approx(min(losses), rel=1e-9)
    assert torch.isinf(scores).sum() == 1


@pytest.mark.parametrize("family", ["timm-vit", "timm-swin", "hf-vit", "hf-swin"])
def test_head_pruned_round_trip_is_bit_exact_and_loads_natively(family, images, tmp_path):
    model = randomize(FAMILIES[family]())
    stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    result = vbprune.prune_model(
        model, stats, config=vbprune.PruningConfig(target_macs=0.5, heads=True, head_weight=4.0)
    )
    assert sum(result.heads.values()) < sum(result.original_heads.values())
    path = vbprune.save_pretrained(model, tmp_path / "out")
    loaded = vbprune.from_pretrained(path)
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert vbprune.attention_heads(loaded) == result.heads
    torch.testing.assert_close(logits(loaded, images), logits(model, images), rtol=0, atol=0)
    if family.startswith("timm"):
        import timm

        native = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
        assert vbprune.attention_heads(native) == result.heads
        torch.testing.assert_close(logits(native, images), logits(model, images))
    else:  # stock transformers, vbprune not importable
        differences = stock_differences({path: (model, images)}, tmp_path)
        assert max(differences.values()) < 1e-5, differences


def test_checkpoints_without_heads_record_none(images, tmp_path):
    model = randomize(FAMILIES["hf-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, ratio=0.3)
    path = vbprune.save_pretrained(model, tmp_path / "out")
    import json

    config = json.loads((path / "config.json").read_text())
    assert "attention_heads" not in config and "heads" not in config["vbprune"]


def test_refusals(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    with pytest.raises(ValueError, match=r"out of reach.*heads=True"):
        vbprune.prune_model(model, stats, config=vbprune.PruningConfig(target_macs=0.05))
    with pytest.raises(ValueError, match="exactly one of ratio, target_macs"):
        vbprune.PruningConfig(ratio=0.5, target_macs=0.5)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"target_macs must be in \(0, 1\]"):
            vbprune.PruningConfig(target_macs=bad)
    with pytest.raises(ValueError, match="VarianceCalibrator\\(model, heads=True\\)"):
        vbprune.prune_model(model, stats, config=vbprune.PruningConfig(ratio=0.5, heads=True))
    heads_stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    with pytest.raises(ValueError, match=r"out of reach: .* at most"):
        config = vbprune.PruningConfig(target_macs=0.01, heads=True)
        vbprune.prune_model(model, heads_stats, config=config)
    assert all(s.num_heads == 2 for s in vbprune.find_attention_sites(model))  # untouched


@pytest.mark.parametrize(
    ("name", "args", "reason"),
    [
        ("cait_xxs24_224", TIMM_ZOO["cait_xxs24_224"], "talking heads"),
        ("convnext_atto", {}, "no attention module"),
        ("eva02_tiny_patch14_224", TIMM_ZOO["eva02_tiny_patch14_224"], "input width"),
    ],
)
def test_models_whose_heads_cannot_be_pruned_say_why(name, args, reason):
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, **args)
    with pytest.raises(vbprune.UnsupportedModelError, match=reason):
        vbprune.find_attention_sites(model)


def test_a_plan_that_splits_a_head_is_refused(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    plan = plan_removing(model, stats, {}, "mean")
    site = next(iter(plan.heads))
    entry = plan.sites[site]
    entry.keep, entry.fold_mean = entry.keep[1:], [0.0]
    with pytest.raises(vbprune.PlanError, match="whole heads"):
        vbprune.apply_plan(model, plan)


@pytest.mark.parametrize(
    ("key", "measure", "round_to"),
    [
        ("swinv2", "target_macs", 1),  # the position-bias MLP's last rows are heads
        ("clip", "target_macs", 1),  # the image size is in the vision config
        ("siglip", "target_macs", 1),
        ("aimv2_large_patch14_224", "target_params", 1),  # bias-free projections
        ("deit3_small_patch16_224", "target_macs", 8),  # widths rounded down
    ],
)
def test_budgets_hold_across_layouts_rounding_and_folded_biases(key, measure, round_to):
    model, images = build(key)
    count = vbprune.count_params if measure == "target_params" else vbprune.count_macs
    dense = count(model)
    stats = vbprune.VarianceCalibrator(model, heads=True).run([images])
    config = vbprune.PruningConfig(**{measure: 0.6}, heads=True, head_weight=0.5,
                                   round_to=round_to)  # fmt: skip
    result = vbprune.prune_model(model, stats, config=config)
    share = count(model) / dense
    assert share <= 0.6 + 1e-9
    assert result.budget["achieved"] == pytest.approx(share, abs=1e-6)
    assert all(width % round_to == 0 or width == result.original_widths[name]
               for name, width in result.widths.items())  # fmt: skip
    if measure == "target_macs":  # the costs are exact: nothing over-pruned unseen
        assert result.budget["predicted"] == pytest.approx(share, abs=1e-5)


def test_a_beit_sharing_one_relative_bias_between_layers_is_refused():
    import transformers

    config = transformers.BeitConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8, use_shared_relative_position_bias=True,
    )  # fmt: skip
    with torch.device("meta"):
        model = transformers.BeitForImageClassification(config)
    with pytest.raises(vbprune.UnsupportedModelError, match="shared by every layer"):
        vbprune.find_attention_sites(model)


def test_head_weight_needs_heads():
    with pytest.raises(ValueError, match="needs heads=True"):
        vbprune.PruningConfig(target_macs=0.5, head_weight=2.0)


def test_a_head_plan_replays_from_json_to_the_same_model(images):
    import copy
    import json

    model = randomize(FAMILIES["timm-vit"]())
    twin = copy.deepcopy(model)
    stats = vbprune.VarianceCalibrator(model, heads=True, covariance=True).run([images])
    config = vbprune.PruningConfig(target_macs=0.6, heads=True, head_weight=0.05,
                                   compensate="ls")  # fmt: skip
    result = vbprune.prune_model(model, stats, config=config)
    plan = vbprune.PruningPlan.from_dict(json.loads(json.dumps(result.plan.to_dict())))
    assert plan.heads == result.heads and plan.budget["target"] == pytest.approx(0.6)
    vbprune.apply_plan(twin, plan, stats=stats)
    assert vbprune.attention_heads(twin) == result.heads
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in twin.state_dict().items())
