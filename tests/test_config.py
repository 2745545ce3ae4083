"""PruningConfig validates, round-trips, drives prune_model and is saved with the model."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize, run_vbprune
from vbprune import PruningConfig


@pytest.mark.parametrize(
    "fields, error, match",
    [
        ({"ratio": 1.0}, vbprune.ConfigError, r"ratio must be in \[0, 1\), got 1.0"),
        ({"ratio": float("nan")}, vbprune.ConfigError, r"ratio must be in \[0, 1\)"),
        ({"ratio": "0.5"}, vbprune.OptionTypeError, r"ratio must be a number"),
        ({"ratio": True}, vbprune.OptionTypeError, r"ratio must be a number"),
        ({"ratio": 0.5, "scope": "block"}, vbprune.ConfigError,
         r"scope must be one of global, layer; got 'block'"),
        ({"ratio": 0.5, "criterion": "snip"}, vbprune.ConfigError,
         r"criterion must be one of variance, random, magnitude, obs(, \w+)*; got 'snip'"),
        ({"ratio": 0.5, "min_keep": 0}, vbprune.ConfigError, r"min_keep must be a positive"),
        ({"ratio": 0.5, "round_to": 2.5}, vbprune.ConfigError, r"round_to must be a positive"),
        ({"ratio": 0.5, "seed": "1"}, vbprune.OptionTypeError, r"seed must be an integer"),
        ({"ratio": 0.5, "compensate": "yes"}, vbprune.ConfigError,
         r"compensate must be one of mean, ls, none(, \w+)*; got 'yes'"),
        ({"ratio": 0.5, "compensate": 1.0}, vbprune.OptionTypeError, r"compensate must be"),
    ],
)  # fmt: skip
def test_bad_field_is_named_with_its_allowed_values(fields, error, match):
    with pytest.raises(error, match=match) as info:
        PruningConfig(**fields)
    assert isinstance(info.value, vbprune.VBPruneError)
    # the built-in parents stay, for code written against them
    assert isinstance(info.value, ValueError if error is vbprune.ConfigError else TypeError)


def test_round_trip_and_unknown_keys_warn():
    config = PruningConfig(ratio=0.45, scope="layer", min_keep=4, round_to=8,
                           criterion="random", seed=3, compensate=False)  # fmt: skip
    data = json.loads(json.dumps(config.to_dict()))
    assert PruningConfig.from_dict(data) == config
    assert data == {"ratio": 0.45, "scope": "layer", "min_keep": 4, "round_to": 8,
                    "criterion": "random", "seed": 3, "compensate": "none"}  # fmt: skip
    # vbprune 0.1/0.2 wrote a boolean: still read, as its name
    assert PruningConfig.from_dict({**data, "compensate": True}).compensate == "mean"
    with pytest.warns(UserWarning, match=r"unknown PruningConfig keys \['sparsity_kind'\]"):
        newer = PruningConfig.from_dict({**data, "sparsity_kind": "structured"})
    assert newer == config
    assert PruningConfig(1 / 2).ratio == 0.5 and PruningConfig(0).ratio == 0.0  # floats


def test_config_drives_prune_model_like_the_keywords(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    by_config, by_keywords = copy.deepcopy(model), copy.deepcopy(model)
    config = PruningConfig(ratio=0.4, scope="layer", round_to=4, criterion="random", seed=7)
    result = vbprune.prune_model(by_config, stats, config=config)
    same = vbprune.prune_model(by_keywords, stats, ratio=0.4, scope="layer", round_to=4,
                               criterion="random", seed=7)  # fmt: skip
    assert result.config == same.config == config
    assert result.plan.to_dict() == same.plan.to_dict()
    assert torch.equal(logits(by_config, images), logits(by_keywords, images))
    assert all(w % 4 == 0 for w in result.widths.values())
    other_seed = vbprune.prune_model(copy.deepcopy(model), stats, config=PruningConfig(
        ratio=0.4, scope="layer", round_to=4, criterion="random", seed=8))  # fmt: skip
    assert other_seed.plan.to_dict() != result.plan.to_dict()  # the seed is used


def test_options_given_twice_or_not_at_all_are_refused(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    with pytest.raises(vbprune.ConfigError, match=r"not both \(got \['scope'\]\)"):
        vbprune.prune_model(model, stats, scope="layer", config=PruningConfig(0.5))
    with pytest.raises(vbprune.ConfigError, match="give a ratio"):
        vbprune.prune_model(model, stats)
    with pytest.raises(vbprune.OptionTypeError, match="config must be a PruningConfig"):
        vbprune.prune_model(model, stats, config={"ratio": 0.5})
    assert all(site.width == 128 for site in vbprune.find_mlp_sites(model))  # untouched


def test_plan_records_the_config_and_apply_plan_follows_it(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    plan = vbprune.plan_pruning(stats, config=PruningConfig(ratio=0.5, compensate=False))
    replayed = vbprune.PruningPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert replayed.config == plan.config and replayed.config.compensate == "none"
    by_plan, folded, dropped = (copy.deepcopy(model) for _ in range(3))
    vbprune.apply_plan(by_plan, replayed)  # follows the plan's compensate=False
    vbprune.apply_plan(folded, replayed, compensate=True)  # an explicit argument wins
    vbprune.prune_model(dropped, stats, ratio=0.5, compensate=False)
    assert torch.equal(logits(by_plan, images), logits(dropped, images))
    assert not torch.equal(logits(folded, images), logits(by_plan, images))


def test_plans_of_vbprune_0_1_load():
    old = {
        "ratio": 0.3,
        "scope": "layer",
        "min_keep": 1,
        "round_to": 1,
        "sites": {"blocks.0.mlp": {"width": 3, "keep": [0, 2], "fold_mean": [0.5]}},
    }
    plan = vbprune.PruningPlan.from_dict(old)
    assert plan.config == PruningConfig(0.3, scope="layer")
    assert plan.widths == {"blocks.0.mlp": 2} and plan.sites["blocks.0.mlp"].pruned == [1]


def test_prune_output_records_the_config_everywhere(prune_output):
    expected = PruningConfig(ratio=0.5).to_dict()
    report = json.loads((prune_output / "report.json").read_text())
    section = json.loads((prune_output / "model" / "config.json").read_text())["vbprune"]
    plan = json.loads((prune_output / "plan.json").read_text())
    assert report["pruning"] == section["pruning"] == plan["config"] == expected
    from vbprune.io.metadata import loaded_metadata

    loaded = vbprune.from_pretrained(prune_output / "model")
    assert PruningConfig.from_dict(loaded_metadata(loaded)["pruning"]) == PruningConfig(0.5)


def test_cli_refuses_a_bad_option_before_loading_anything(tmp_path, capsys):
    # the model does not exist: the ratio is checked first, and named
    code = run_vbprune("prune", "--model", "timm:no_such_model", "--stats", "x",
                       "--ratio", 0.5, "--scope", "layer", "--min-keep", 0,
                       "--output", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert "--min-keep must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
