"""Two CPU processes give exactly the statistics of one process over the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vbprune
from distributed_worker import reference_data

pytestmark = pytest.mark.distributed

WORKER = Path(__file__).parent / "distributed_worker.py"

# One process, and two CPU processes as users launch them (see ecosystem notes).
LAUNCHERS = {
    1: [sys.executable, "-m", "vbprune.cli"],
    2: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "vbprune.cli"],
}  # fmt: skip
CPU_ENV = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


def run_cli(processes: int, *args) -> None:
    """Run ``vbprune ARGS`` on 1 or 2 processes; fail the test with its stderr."""
    done = subprocess.run(
        [*LAUNCHERS[processes], *(str(a) for a in args)],
        env=dict(os.environ, **CPU_ENV), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("dtype_name, rtol", [("float64", 1e-12), ("float32", 1e-6)])
def test_two_processes_equal_one(tmp_path, dtype_name, rtol):
    out = tmp_path / "stats.safetensors"
    env = dict(os.environ, **CPU_ENV)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        dtype_name,
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = vbprune.ActivationStats.load(out)

    model, data = reference_data(getattr(torch, dtype_name))
    if dtype_name == "float64":
        # Other batches than the two ranks had: the statistics do not depend on batching.
        batches = data.split(4)
    else:
        # The ranks' own batches: a float32 forward itself changes in the last bits with
        # the batch's composition and thread count, hiding what is checked (the merge).
        batches = [*data[0::2].split(3), *data[1::2].split(3)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: float32 kernels differ with thread count
    try:
        one = vbprune.VarianceCalibrator(model, covariance=True).run(batches)
    finally:
        torch.set_num_threads(threads)
    assert list(two) == list(one)
    for name in one:
        stage = int(name.split(".")[1])  # stages.{s}.blocks.{b}.mlp sees (8 / 2^s)^2 positions
        assert two[name].count == one[name].count == 11 * (8 >> stage) ** 2
        torch.testing.assert_close(two[name].mean, one[name].mean, rtol=rtol, atol=1e-9 * rtol)
        torch.testing.assert_close(two[name].var, one[name].var, rtol=rtol, atol=1e-9 * rtol)
        # the co-moment matrices merge exactly too (off-diagonal entries are smaller than
        # the variances: judged against the largest variance)
        scale = one[name].var.max()
        torch.testing.assert_close(two[name].cov, one[name].cov, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize(
    "dtype_name, streaming, rtol, heads",
    [("float64", False, 1e-12, False), ("float64", True, 1e-12, False),
     ("float32", False, 1e-6, False), ("float64", False, 1e-12, True)],
)  # fmt: skip
def test_cli_two_processes_equal_one_on_a_dataset(
    image_folder, timm_model_dir, tmp_path, dtype_name, streaming, rtol, heads
):
    # 21 images, batches of 4: neither the processes nor the batch size divide the data.
    args = ["calibrate", "--model", timm_model_dir, "--dataset", image_folder,
            "--batch-size", 4, "--num-workers", 0, "--dtype", dtype_name]  # fmt: skip
    args += ["--streaming"] if streaming else []
    args += ["--heads"] if heads else []
    stats = {}
    for processes in LAUNCHERS:
        out = tmp_path / f"stats{processes}.safetensors"
        run_cli(processes, *args, "--output", out)
        stats[processes] = vbprune.ActivationStats.load(out)
    one, two = stats[1], stats[2]
    # with --heads the attention sites' statistics (every token of the projection's
    # input) are there too, merged alike
    attention = [name for name in one if name.endswith(".attn")]
    assert bool(attention) == heads and list(one) == list(two)
    for name in one:
        assert one[name].count == two[name].count == 21 * 17
        torch.testing.assert_close(two[name].var, one[name].var, rtol=rtol, atol=0)
        # means near zero: compare on the scale of the spread
        spread = one[name].var.sqrt()
        assert ((two[name].mean - one[name].mean).abs() <= rtol * spread).all()


def test_cli_prune_on_two_processes_matches_one(image_folder, timm_model_dir, tmp_path):
    args = ["prune", "--model", timm_model_dir, "--dataset", image_folder, "--ratio", 0.45,
            "--eval-split", "val", "--batch-size", 4, "--num-workers", 0,
            "--dtype", "float64"]  # fmt: skip
    reports = {}
    for processes in LAUNCHERS:
        out = tmp_path / f"out{processes}"
        run_cli(processes, *args, "--output", out)
        reports[processes] = json.loads((out / "report.json").read_text())
    one, two = reports[1], reports[2]
    assert two["calibration"]["processes"] == 2
    for key in ("widths", "params", "macs", "num_pruned"):
        assert two[key] == one[key]
    assert two["accuracy"]["samples"] == one["accuracy"]["samples"] == 9  # each image once
    for key in ("top1_before", "top1_after_pruning"):
        assert two["accuracy"][key] == one["accuracy"][key]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out1", "out2"]  # no temp left


def test_cli_evaluate_on_two_processes_counts_every_image_once(image_folder, prune_output,
                                                               tmp_path):  # fmt: skip
    reports = {}
    for processes in LAUNCHERS:
        out = tmp_path / f"eval{processes}"
        run_cli(processes, "evaluate", "--model", prune_output / "model", "--dataset",
                image_folder, "--split", "val", "--batch-size", 4, "--num-workers", 0,
                "--output", out)  # fmt: skip
        reports[processes] = json.loads((out / "report.json").read_text())
    assert reports[2]["processes"] == 2
    assert reports[1]["samples"] == reports[2]["samples"] == 9
    assert reports[1]["top1_accuracy"] == reports[2]["top1_accuracy"]
    assert reports[1]["loss"] == pytest.approx(reports[2]["loss"], rel=1e-6)


def test_cli_distill_on_two_processes_evaluates_every_image_once(image_folder, prune_output,
                                                                 tmp_path):  # fmt: skip
    out = tmp_path / "kd"
    run_cli(2, "distill", "--model", prune_output, "--dataset", image_folder, "--eval-split",
            "val", "--epochs", 2, "--batch-size", 4, "--learning-rate", 1e-3,
            "--num-workers", 0, "--output", out)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["distillation"]["processes"] == 2
    assert report["distillation"]["eval_samples_per_epoch"] == [9, 9]  # 9 images, once each
    assert (out / "model" / "model.safetensors").is_file()
