"""Peak memory of calibration against the number of calibration samples.

    python benchmarks/calibration_memory.py                  # DeiT-T, 32/128/512 images, CPU
    python benchmarks/calibration_memory.py --model deit_base_patch16_224 --device cuda

Every (samples, mode) pair runs in a fresh Python process, so each peak is its own: the
process builds the model, then either runs a plain inference forward over the images or
calibrates on them through a DataLoader (images made on the fly, nothing kept).

Reported for the plain forward and for calibration: the peak resident memory of the
process (CPU) or the peak allocated GPU memory (CUDA), and in brackets its rise over the
process right after building the model, i.e. the pass's own working memory.

Calibration keeps a count, a mean and an M2 per neuron and nothing per sample, so its
peak must not grow with the number of samples. It should exceed a plain forward's only
by the per-batch reduction buffers. A CPU process's peak varies by ~150 MiB between
identical runs (allocator and thread scratch), so each number is the median of
``--trials`` processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import timm
import torch
from common import describe

import vbprune


class RandomImages(torch.utils.data.Dataset):
    """``n`` random images, each made when asked for (seeded by its index)."""

    def __init__(self, n: int, size: int = 224):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(index)
        return torch.randn(3, self.size, self.size, generator=g)


def child(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    model = timm.create_model(args.model, pretrained=False).eval().to(device, dtype)
    loader = torch.utils.data.DataLoader(RandomImages(args.child_samples), args.batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if args.child_mode == "plain":
        with torch.no_grad():
            for batch in loader:
                model(batch.to(device, dtype))
    else:
        vbprune.VarianceCalibrator(model).run(loader)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # the rise over the model-loaded process: what the pass itself needed at its peak
    print(json.dumps({"peak_mib": peak, "rise_mib": peak - base}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_tiny_patch16_224")
    parser.add_argument("--num-samples", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3, help="processes per number")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--child-mode", choices=["plain", "calibrate"], help=argparse.SUPPRESS)
    parser.add_argument("--child-samples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_mode:
        return child(args)

    device = torch.device(args.device)
    what = "peak allocated GPU memory" if device.type == "cuda" else "peak resident memory"
    print(describe(device, args.dtype))
    print(f"{args.model}, batch {args.batch_size}, {what} of a fresh process (MiB), "
          f"median of {args.trials}")  # fmt: skip
    print(
        "| samples | plain forward: peak (rise) | calibration: peak (rise) "
        "| rise, calibration - plain |\n|---|---|---|---|"
    )
    peaks = []
    for n in args.num_samples:
        row = {}
        for mode in ("plain", "calibrate"):
            command = [
                sys.executable, __file__, "--model", args.model, "--batch-size",
                str(args.batch_size), "--device", args.device, "--dtype", args.dtype,
                "--child-mode", mode, "--child-samples", str(n),
            ]  # fmt: skip
            trials = []
            for _ in range(args.trials):
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                trials.append(json.loads(done.stdout.strip().splitlines()[-1]))
            row[mode] = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
        peaks.append(row["calibrate"]["rise_mib"])
        plain, cal = row["plain"], row["calibrate"]
        print(
            f"| {n} | {plain['peak_mib']:.0f} (+{plain['rise_mib']:.0f}) "
            f"| {cal['peak_mib']:.0f} (+{cal['rise_mib']:.0f}) "
            f"| {cal['rise_mib'] - plain['rise_mib']:+.0f} |",
            flush=True,
        )
    print(
        f"\nrise of the calibration peak over the loaded model: {peaks[0]:.0f} MiB at "
        f"{args.num_samples[0]} samples, {peaks[-1]:.0f} MiB at {args.num_samples[-1]}"
    )
    # what calibration keeps between batches: a float64 mean and M2 per neuron and a count
    sites = vbprune.find_mlp_sites(timm.create_model(args.model, pretrained=False))
    empty = [vbprune.NeuronStats.empty(site.width) for site in sites]
    state = sum(s.mean.nbytes + s.m2.nbytes + 8 for s in empty)  # 8: the count
    print(f"statistics kept across batches: {state / 1024:.0f} KiB for {len(sites)} MLPs")


if __name__ == "__main__":
    main()
