"""Calibration pass time over a plain inference forward on the same batches.

    python benchmarks/calibration_overhead.py --model deit_small_patch16_224 --batch-size 8

Both are timed in one run, interleaved, on the same random batches; the ratio is what
recording the statistics costs (goal: <= 1.10x on CPU for DeiT-S at batch 8).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import timm
import torch

import vbprune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({name}), {args.dtype}, threads {torch.get_num_threads()}")

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

    def calibrate() -> None:
        calibrator.run(batches)

    plain(), calibrate()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "calibrate": []}
    for _ in range(args.repeats):
        for label, run in (("plain", plain), ("calibrate", calibrate)):
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[label].append(time.perf_counter() - start)
    t_plain, t_cal = (statistics.median(times[k]) for k in ("plain", "calibrate"))
    images = args.batches * args.batch_size
    print(
        f"{args.model} batch {args.batch_size}: plain {images / t_plain:.1f} img/s, "
        f"calibration {images / t_cal:.1f} img/s, overhead {t_cal / t_plain:.3f}x "
        f"(median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
