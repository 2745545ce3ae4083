"""Latency budgets: the speedup asked against the speedup measured, the latency table's
prediction against measured latency, and MAC budgets at the same MACs and at the same
measured latency.

    python benchmarks/latency_budget.py                  # DeiT-S, 1.5x, this CPU
    python benchmarks/latency_budget.py --speedups 1.25 1.5 2 --device cuda --batch 64

For each speedup S: ``PruningConfig(target_latency=1/S, heads=True)`` (head weight chosen
by KL on the calibration images), then, independently of what the pruning measured while
planning, ``--runs`` interleaved measurements of dense vs pruned (each the median of
per-round ratios; the median of the runs is reported). Beside it:

- the table's prediction for the pruned model against its measured latency (goal: within
  15 %), in milliseconds and as a share of the dense model's (the dense model timed in
  turns with the pruned one: on a shared machine the absolute time drifts between the
  table and the check), also for the MAC-budget model at the same MACs;
- a MAC budget at the MACs the latency plan kept (``target_macs`` = its counted share,
  same head weight): the speedup it measures (the latency plan should not be slower);
- a MAC budget searched (bisection on measured latency) to the latency plan's measured
  speedup: the KL of both pruned models' logits from the dense ones on held-out images
  (the latency plan should not be further from the dense model).

Weights are random (pretrained=False: nothing is downloaded here) and the images are
noise: the KL compares the two plans' fidelity to the same dense model, not accuracy.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import timm
import torch
from common import describe, interleaved_times, median_ratio

import vbprune
from vbprune import PruningConfig


def measured_speedup(dense, pruned, x, runs: int, repeats: int) -> float:
    """Median over ``runs`` of the median per-round ratio dense/pruned, in turns."""
    ratios = []
    for _ in range(runs):
        with torch.inference_mode():
            times = interleaved_times({"dense": lambda: dense(x), "pruned": lambda: pruned(x)},
                                      repeats, x.is_cuda)  # fmt: skip
        ratios.append(median_ratio(times["dense"], times["pruned"]))
    return statistics.median(ratios)


def absolute(dense, pruned, x, repeats: int) -> tuple[float, float]:
    """Median seconds of the dense and the pruned model, timed in turns."""
    with torch.inference_mode():
        times = interleaved_times({"dense": lambda: dense(x), "pruned": lambda: pruned(x)},
                                  repeats, x.is_cuda)  # fmt: skip
    return statistics.median(times["dense"]), statistics.median(times["pruned"])


def kl(dense, pruned, images) -> float:
    with torch.inference_mode():
        p = torch.log_softmax(dense(images).float(), -1)
        q = torch.log_softmax(pruned(images).float(), -1)
    return float(torch.nn.functional.kl_div(q, p, log_target=True, reduction="batchmean"))


def kept_units(model) -> dict[str, int]:
    widths = vbprune.architectures.mlp_widths(model)
    return {**widths, **vbprune.attention_heads(model)}


def prune(model, stats, config, images, table):
    pruned = copy.deepcopy(model)
    result = vbprune.prune_model(pruned, stats, config=config, images=images, latency_table=table)
    return pruned, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--speedups", type=float, nargs="+", default=[1.5])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1, help="images per timed forward")
    parser.add_argument("--images", type=int, default=64, help="calibration / probe images")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe(device, "float32"))
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval().to(device)
    size = model.pretrained_cfg["input_size"]
    g = torch.Generator().manual_seed(0)
    calib = torch.randn(args.images, *size, generator=g).to(device)
    held_out = torch.randn(args.images, *size, generator=g).to(device)
    x = torch.zeros(args.batch, *size, device=device)
    start = time.perf_counter()
    stats = vbprune.VarianceCalibrator(model, heads=True).run(calib.split(16))
    print(f"calibration ({args.images} images): {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    table = vbprune.latency_table(model, batch_size=args.batch, cache=False)
    print(f"latency table: {time.perf_counter() - start:.1f} s, dense {table.dense * 1e3:.2f} ms")
    dense_macs = vbprune.count_macs(model)

    rows = []
    for speedup in args.speedups:
        start = time.perf_counter()
        config = PruningConfig(target_latency=1 / speedup, heads=True)
        pruned, result = prune(model, stats, config, calib, table)
        took = time.perf_counter() - start
        budget = result.budget
        achieved = measured_speedup(model, pruned, x, args.runs, args.repeats)
        predicted_s = table.predict(kept_units(pruned))
        # both timed now, in turns: the dense model's time drifts on a shared machine, so
        # the prediction is also compared as a share of the dense model's
        dense_s, actual_s = absolute(model, pruned, x, args.repeats * 2)
        share_error = (predicted_s / table.dense) / (actual_s / dense_s) - 1
        macs = vbprune.count_macs(pruned) / dense_macs
        # a MAC budget at the same MACs, same head weight
        same_macs, _ = prune(
            model,
            stats,
            PruningConfig(target_macs=macs, heads=True, head_weight=budget["head_weight"]),
            calib,
            None,
        )
        macs_speedup = measured_speedup(model, same_macs, x, args.runs, args.repeats)
        dense_now, macs_s = absolute(model, same_macs, x, 2 * args.repeats)
        macs_error = (table.predict(kept_units(same_macs)) / table.dense) / (macs_s / dense_now)
        # a MAC budget searched to the same measured latency (bisection on target_macs)
        low, high, match = 0.05, 1.0, None
        for _ in range(7):
            mid = (low + high) / 2
            try:
                trial, _ = prune(model, stats, PruningConfig(target_macs=mid, heads=True), calib,
                                 None)  # fmt: skip
            except ValueError:
                low = mid
                continue
            s = measured_speedup(model, trial, x, 1, args.repeats)
            match = (mid, trial, s)
            if s < achieved:
                high = mid
            else:
                low = mid
        rows.append({
            "speedup": speedup, "planning_s": took, "achieved": achieved,
            "planning_measured": 1 / budget["achieved"], "steps": len(budget["steps"]),
            "predicted_ms": predicted_s * 1e3, "measured_ms": actual_s * 1e3,
            "table_dense_ms": table.dense * 1e3, "dense_ms": dense_s * 1e3,
            "prediction_error": predicted_s / actual_s - 1, "share_error": share_error,
            "macs": macs,
            "head_weight": budget["head_weight"], "heads": sum(result.heads.values()),
            "heads_total": sum(result.original_heads.values()),
            "same_macs_speedup": macs_speedup, "same_macs_prediction_error": macs_error - 1,
            "matched_macs": match[0] if match else None,
            "matched_speedup": match[2] if match else None,
            "kl_latency": kl(model, pruned, held_out),
            "kl_matched": kl(model, match[1], held_out) if match else None,
        })  # fmt: skip
        print(rows[-1], flush=True)

    print(
        "\n| speedup asked | measured (median of runs) | within 5 % | measured while planning "
        "| plans timed | table: predicted / measured ms (dense: table / now) | "
        "table: predicted / measured share of dense | MACs kept | heads kept | "
        "MAC budget at same MACs: speedup (table error) | "
        "MAC budget at same latency: MACs, speedup | "
        "KL latency plan / MAC plan |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        within = abs(r["achieved"] / r["speedup"] - 1) <= 0.05
        matched = (f"{100 * r['matched_macs']:.1f} %, {r['matched_speedup']:.3f}x"
                   if r["matched_macs"] is not None else "none")  # fmt: skip
        kl_matched = f"{r['kl_matched']:.4f}" if r["kl_matched"] is not None else "-"
        print(
            f"| {r['speedup']:g}x | {r['achieved']:.3f}x | {'yes' if within else 'no'} | "
            f"{r['planning_measured']:.3f}x | {r['steps']} | {r['predicted_ms']:.2f} / "
            f"{r['measured_ms']:.2f} ({100 * r['prediction_error']:+.1f} %; dense "
            f"{r['table_dense_ms']:.1f} / {r['dense_ms']:.1f}) | "
            f"{r['predicted_ms'] / r['table_dense_ms']:.3f} / "
            f"{r['measured_ms'] / r['dense_ms']:.3f} ({100 * r['share_error']:+.1f} %) | "
            f"{100 * r['macs']:.1f} % | {r['heads']}/{r['heads_total']} (weight "
            f"{r['head_weight']}) | {r['same_macs_speedup']:.3f}x "
            f"({100 * r['same_macs_prediction_error']:+.1f} %) | {matched} | "
            f"{r['kl_latency']:.4f} / {kl_matched} |"
        )


if __name__ == "__main__":
    main()
