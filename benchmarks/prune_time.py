"""Prune time: global selection and surgery (fold + shrink), each timed on its own.

    python benchmarks/prune_time.py          # DeiT-T/S/B at 0.45/0.50/0.55 and DeiT-B at 0.2
    python benchmarks/prune_time.py --models deit_base_patch16_224:0.55 --device cuda

Calibration is not included (see calibration_overhead.py): it is one forward pass over
the calibration data. Weights are random (pretrained=False) and the statistics synthetic:
neither changes the time of selection and surgery. Latency of the pruned models:
latency.py.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import timm
import torch
from common import describe, synthetic_stats

import vbprune

DEFAULT = [
    "deit_tiny_patch16_224:0.45",
    "deit_small_patch16_224:0.5",
    "deit_base_patch16_224:0.55",
    "deit_base_patch16_224:0.2",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT, help="timm NAME:RATIO entries")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe(device, "float32"))
    print("| model | ratio | selection ms | surgery ms |\n|---|---|---|---|")
    for entry in args.models:
        name, ratio = entry.rsplit(":", 1)
        dense = timm.create_model(name, pretrained=False).eval().to(device)
        stats = synthetic_stats(dense)
        select, surgery = [], []
        for _ in range(args.repeats):
            model = copy.deepcopy(dense)
            start = time.perf_counter()
            plan = vbprune.plan_pruning(stats, float(ratio))
            middle = time.perf_counter()
            vbprune.apply_plan(model, plan)
            if device.type == "cuda":
                torch.cuda.synchronize()
            select.append(middle - start)
            surgery.append(time.perf_counter() - middle)
        print(
            f"| {name} | {ratio} | {statistics.median(select) * 1e3:.1f} "
            f"| {statistics.median(surgery) * 1e3:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
