"""Statistics say where they come from, statistics of other weights are refused, a layer
that pruning empties is warned of, and the speedup is measured dense against pruned in
turns (issue 23, items 3, 4 and 5)."""

from __future__ import annotations

import warnings

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, TINY_TIMM_ARGS, randomize, run_vbprune
from vbprune.io.weights import weights_fingerprint


def test_provenance_round_trips_and_older_files_have_none(tmp_path, images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    stats.save(tmp_path / "plain.safetensors")
    assert vbprune.ActivationStats.load(tmp_path / "plain.safetensors").provenance == {}
    stats.provenance = {"model": "timm:x", "weights": weights_fingerprint(model), "seed": 3}
    stats.save(tmp_path / "s.safetensors")
    loaded = vbprune.ActivationStats.load(tmp_path / "s.safetensors")
    assert loaded.provenance == stats.provenance
    assert loaded.to("cpu").provenance == stats.provenance


def test_the_fingerprint_changes_with_any_weight_and_only_then():
    model = randomize(FAMILIES["timm-vit"]())
    before = weights_fingerprint(model)
    import copy

    assert weights_fingerprint(copy.deepcopy(model)) == before  # the same weights
    assert weights_fingerprint(randomize(FAMILIES["timm-vit"]())) != before  # other draws
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert weights_fingerprint(model) != before


def test_calibrate_records_provenance_and_prune_refuses_other_weights(
    image_folder, timm_model_dir, tmp_path, capsys
):
    stats_file = tmp_path / "stats.safetensors"
    assert run_vbprune("calibrate", "--model", timm_model_dir, "--dataset", image_folder,
                       "--num-workers", 0, "--output", stats_file) == 0  # fmt: skip
    recorded = vbprune.ActivationStats.load(stats_file).provenance
    assert recorded["model"] == str(timm_model_dir.resolve())
    assert recorded["dataset"] == str(image_folder) and recorded["split"] == "train"
    assert len(recorded["weights"]) == 16 and recorded["transform"]

    # the same architecture with one weight changed: refused in one line, nothing written
    import timm
    from timm.models import save_for_hf

    other_dir = tmp_path / "other"
    model = timm.create_model(f"local-dir:{timm_model_dir}", pretrained=True)
    with torch.no_grad():
        model.head.bias += 0.5
    save_for_hf(model, str(other_dir), model_args=TINY_TIMM_ARGS, safe_serialization=True)
    args = ["prune", "--model", other_dir, "--stats", stats_file, "--ratio", "0.5"]
    code = run_vbprune(*args, "--output", tmp_path / "out")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "other weights" in err[0], err
    assert "--accept-other-weights" in err[0]
    assert not (tmp_path / "out").exists()
    with pytest.warns(UserWarning, match="other weights"):
        code = run_vbprune(*args, "--output", tmp_path / "out", "--accept-other-weights")
    assert code == 0 and (tmp_path / "out" / "model").is_dir()
    # the statistics of its own weights pass
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats", stats_file, "--ratio",
                       "0.5", "--output", tmp_path / "own") == 0  # fmt: skip


def test_a_layer_the_global_ranking_empties_is_warned_of_once(images):
    model = randomize(FAMILIES["timm-convnext"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    sites = vbprune.find_mlp_sites(model)
    first = sites[0].name  # its activations vary least: the global ranking empties it
    scaled = {name: vbprune.NeuronStats(entry.count, entry.mean,
                                        entry.m2 * (1e-6 if name == first else 1.0))
              for name, entry in stats.items()}  # fmt: skip
    with pytest.warns(UserWarning, match=r"keep almost none of their neurons") as caught:
        result = vbprune.prune_model(model, scaled, ratio=0.3)
    assert result.collapsed_sites and result.collapsed_sites[0] == first
    assert sum("almost none" in str(w.message) for w in caught) == 1
    assert "--min-keep" in str(caught[0].message) and "--scope layer" in str(caught[0].message)

    calm = randomize(FAMILIES["timm-convnext"]())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a per-layer ranking collapses nothing: no warning
        result = vbprune.prune_model(calm, scaled, ratio=0.3, scope="layer")
    assert result.collapsed_sites == []


def test_evaluate_with_a_baseline_reports_both_and_the_speedup_of_their_latencies(
    image_folder, timm_model_dir, prune_output, tmp_path
):
    import json

    common = ["--dataset", image_folder, "--split", "val", "--num-workers", 0,
              "--latency-repeats", 3]  # fmt: skip
    assert run_vbprune("evaluate", "--model", prune_output / "model", *common, "--baseline",
                       timm_model_dir, "--output", tmp_path / "both") == 0  # fmt: skip
    both = json.loads((tmp_path / "both" / "report.json").read_text())
    assert run_vbprune("evaluate", "--model", timm_model_dir, *common,
                       "--output", tmp_path / "dense") == 0  # fmt: skip
    dense = json.loads((tmp_path / "dense" / "report.json").read_text())
    latency = both["latency"]
    assert both["speedup"] == round(latency["baseline_seconds"] / latency["seconds"], 4)
    for key in ("top1_accuracy", "loss", "samples", "params", "macs"):  # a separate run's
        assert both["baseline"][key] == dense[key], key
    assert both["macs"] < both["baseline"]["macs"]
    assert "speedup" in (tmp_path / "both" / "report.md").read_text()


def test_prune_measures_the_speedup_in_turns_and_the_card_shows_it(
    image_folder, timm_model_dir, tmp_path
):
    import json

    out = tmp_path / "out"
    assert run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--ratio", 0.5, "--num-workers", 0, "--batch-size", 4,
                       "--measure-speedup", "--output", out) == 0  # fmt: skip
    speedup = json.loads((out / "report.json").read_text())["speedup"]
    assert speedup["value"] == round(speedup["dense_ms"] / speedup["pruned_ms"], 4)
    assert speedup["batch_size"] == 4 and speedup["device"]
    card = (out / "model" / "README.md").read_text()
    assert f"Measured speedup: **{speedup['value']:.2f}x**" in card
