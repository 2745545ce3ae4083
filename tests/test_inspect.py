"""`vbprune inspect` on the three kinds of path: its tables equal what the statistics and
the checkpoint hold (issue 23, item 2)."""

from __future__ import annotations

import json

import torch

import vbprune
from testing_utils import run_vbprune
from vbprune.evaluation.inspection import inspect_path


def rows_by_site(inspection):
    return {row["site"]: row for row in inspection["layers"]}


def test_inspect_a_statistics_file_shows_its_spectra_and_provenance(
    image_folder, timm_model_dir, tmp_path
):
    stats_file = tmp_path / "stats.safetensors"
    assert run_vbprune("calibrate", "--model", timm_model_dir, "--dataset", image_folder,
                       "--num-workers", 0, "--output", stats_file) == 0  # fmt: skip
    stats = vbprune.ActivationStats.load(stats_file)
    inspection = inspect_path(stats_file)
    assert inspection["kind"] == "statistics"
    rows = rows_by_site(inspection)
    assert list(rows) == list(stats)
    for name, entry in stats.items():
        row = rows[name]
        assert row["units"] == entry.var.numel() and row["samples"] == entry.count
        assert row["variance"]["max"] == float(entry.var.max())
        assert row["variance"]["median"] == float(torch.quantile(entry.var.double(), 0.5))
        assert row["dead"] == int((entry.var <= 0).sum())
    assert inspection["provenance"]["statistics"] == stats.provenance


def test_inspect_a_prune_output_and_its_model_folder(prune_output, tmp_path):
    report = json.loads((prune_output / "report.json").read_text())
    section = json.loads((prune_output / "model" / "config.json").read_text())["vbprune"]
    for path, kind in ((prune_output, "prune_output"), (prune_output / "model", "model")):
        inspection = inspect_path(path)
        assert inspection["kind"] == kind
        rows = rows_by_site(inspection)
        for name, width in section["widths"].items():  # what the checkpoint holds
            assert rows[name]["kept"] == width
            assert rows[name]["original"] == report["original_widths"][name]
        assert inspection["provenance"]["model"]["pruning"] == section["pruning"]
    assert "variance" in rows_by_site(inspect_path(prune_output))[name]  # stats there too

    out = tmp_path / "inspect"
    assert run_vbprune("inspect", str(prune_output), "--output", out) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["inspect.json", "inspect.md", "variance.png", "widths.png"]
    table = (out / "inspect.md").read_text()
    assert f"| {name} | mlp | {section['widths'][name]} / " in table


def test_inspect_a_path_of_no_known_kind_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_vbprune("inspect", str(tmp_path / "empty"), "--output", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a statistics file" in err[0]
    assert not (tmp_path / "o").exists()
