"""Calibration pass time over a plain inference forward on the same batches.

    python benchmarks/calibration_overhead.py --model deit_small_patch16_224 --batch-size 8
    python benchmarks/calibration_overhead.py --covariance   # also with the covariance
    python benchmarks/calibration_overhead.py --covariance --fractions 1 0.25  # token subset

All are timed in one run, interleaved, on the same random batches; the ratio is what
recording the statistics costs (goal: <= 1.10x on CPU for DeiT-S at batch 8; with the
covariance for least-squares compensation, <= 2x, and near 1.3x on a subset of tokens).
"""

from __future__ import annotations

import argparse
import statistics

import timm
import torch
from common import describe, interleaved_times, median_ratio

import vbprune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--covariance", action="store_true", help="also time calibration "
                        "with covariance (compensate='ls')")  # fmt: skip
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0],
                        help="covariance_fraction values to time with --covariance")  # fmt: skip
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(describe(device, args.dtype))
    model = timm.create_model(args.model, pretrained=False).eval().to(device, dtype)
    batches = [
        torch.randn(args.batch_size, 3, 224, 224, device=device, dtype=dtype)
        for _ in range(args.batches)
    ]
    calibrator = vbprune.VarianceCalibrator(model)

    def plain() -> None:
        with torch.no_grad():
            for batch in batches:
                model(batch)

    runs = {"plain": plain, "calibrate": lambda: calibrator.run(batches)}
    if args.covariance:
        for fraction in args.fractions:
            with_cov = vbprune.VarianceCalibrator(
                model, covariance=True, covariance_fraction=fraction
            )
            runs[f"covariance {fraction:g}"] = lambda c=with_cov: c.run(batches)
    times = interleaved_times(runs, args.repeats, cuda=device.type == "cuda", warmup=1)
    t_plain, t_cal = (statistics.median(times[k]) for k in ("plain", "calibrate"))
    images = args.batches * args.batch_size
    print(
        f"{args.model} batch {args.batch_size}: plain {images / t_plain:.1f} img/s, "
        f"calibration {images / t_cal:.1f} img/s, overhead "
        f"{median_ratio(times['calibrate'], times['plain']):.3f}x (median of {args.repeats})"
    )
    for name in (k for k in times if k.startswith("covariance")):
        t_cov = statistics.median(times[name])
        print(
            f"with {name} (fraction of tokens) {images / t_cov:.1f} img/s: "
            f"{median_ratio(times[name], times['plain']):.3f}x a plain forward, "
            f"{median_ratio(times[name], times['calibrate']):.3f}x calibration without "
            "covariance"
        )


if __name__ == "__main__":
    main()
