"""Latency of dense vs VBP-pruned models, measured side by side, against the MAC bound.

    python benchmarks/latency.py                      # DeiT-T/S/B at 0.45/0.50/0.55, CPU
    python benchmarks/latency.py --device cuda --dtype bfloat16 --batch-sizes 256 64 8 1
    python benchmarks/latency.py --runtime onnxruntime   # exported, run by onnxruntime
    python benchmarks/latency.py --runtime inductor      # torch.compile(model)
    python benchmarks/latency.py --heads --models deit_small_patch16_224:0.5 \
        deit_base_patch16_224:0.5                        # heads + MLPs to 50 % of the MACs

For each model and batch size the dense model and the pruned ones run in turns (so drift
on a shared machine hits all alike); the speedup is the median of the per-round ratios.
The MAC bound is dense MACs / pruned MACs: what the speedup would be if time followed
MACs exactly. The goal is a speedup of at least 0.93 of that bound. ``--round-to 1 8``
times, next to the exact widths, a pruned model whose every MLP width is a multiple of 8
(same total within a few neurons).

``--runtime`` says what runs both models: eager PyTorch (default), ``torch.compile``
(inductor), or onnxruntime on each model exported with ``torch.onnx.export`` (dynamo, a
dynamic batch; onnxruntime gets as many threads as torch has). Pruned models are
ordinary models of their library, so the speedup should carry over to each.

Weights are random (pretrained=False): they do not change the latency. The statistics
are synthetic unless ``--stats`` gives real ones (``stats.safetensors`` of a ``vbprune
prune`` output, for a single model). Synthetic i.i.d. variances prune every MLP by about
the ratio; a trained model's statistics prune them unevenly, which ``--spread`` imitates
(see common.synthetic_stats).

With ``--heads`` each entry's number is the share of the dense MACs kept
(``PruningConfig(target_macs=..., heads=True)``, heads weighed by ``--head-weight``,
default 1: like neurons): attention
heads go with the MLP neurons, and the selection plus surgery time is printed too.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import timm
import torch
from common import describe, interleaved_times, median_ratio, synthetic_stats

import vbprune

PAPER = ["deit_tiny_patch16_224:0.45", "deit_small_patch16_224:0.5", "deit_base_patch16_224:0.55"]
GOAL = 0.93


def runner(model: torch.nn.Module, x: torch.Tensor, runtime: str, folder: Path) -> Callable:
    """One forward of ``model`` on ``x`` as ``runtime`` runs it (built once, reused)."""
    if runtime == "torch":
        return partial(model, x)
    if runtime == "inductor":
        return partial(torch.compile(model), x)
    import onnxruntime

    path = folder / f"model-{id(model)}.onnx"
    if not path.exists():  # one export per model, for every batch size
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["images"],
                          dynamic_shapes=({0: "batch"},))  # fmt: skip
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    providers = ["CUDAExecutionProvider"] if x.is_cuda else ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    feed = {"images": x.cpu().numpy()}
    return partial(session.run, None, feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=PAPER, help="timm NAME:RATIO entries")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--round-to", type=int, nargs="+", default=[1], help="widths to try")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stats", help="real statistics for the (single) model")
    parser.add_argument("--spread", type=float, default=0.0, help="uneven synthetic widths")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--runtime", default="torch", choices=["torch", "inductor", "onnxruntime"])
    parser.add_argument(
        "--heads", action="store_true", help="NAME:SHARE: heads and neurons to SHARE of the MACs"
    )
    parser.add_argument("--head-weight", type=float, default=1.0, help="heads against neurons")
    args = parser.parse_args()
    if args.runtime == "onnxruntime" and args.dtype != "float32":
        parser.error("--runtime onnxruntime times float32 exports only")
    if args.stats and len(args.models) != 1:
        parser.error("--stats holds the statistics of one model: give one --models entry")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(describe(device, args.dtype) + f", runtime: {args.runtime}")
    with tempfile.TemporaryDirectory(prefix="vbprune-latency-") as exports:
        fractions = time_models(args, device, dtype, Path(exports))
    print()
    for round_to, values in fractions.items():
        kind = "exact widths" if round_to == 1 else f"widths rounded to {round_to}"
        met = sum(f >= GOAL for f in values)
        print(f"{kind}: {met} of {len(values)} speedups reach {GOAL} of their MAC bound "
              f"(median {statistics.median(values):.2f}, repeats {args.repeats})")  # fmt: skip


def prune_with_heads(
    model: torch.nn.Module, stats, share: float, round_to: int, name: str, weight: float = 1.0
) -> tuple[list[int], str]:
    """Prune heads and neurons to ``share`` of the MACs; print the selection + surgery
    time. Returns the MLP widths and the heads kept of all (``"52/72"``)."""
    import time

    config = vbprune.PruningConfig(target_macs=share, heads=True, head_weight=weight,
                                   round_to=round_to)  # fmt: skip
    start = time.perf_counter()
    result = vbprune.prune_model(model, stats, config=config)
    seconds = time.perf_counter() - start
    kept, total = sum(result.heads.values()), sum(result.original_heads.values())
    print(f"<!-- {name}: selection + surgery {seconds:.2f} s, MACs kept "
          f"{result.budget['achieved']:.3f}, heads {kept}/{total} -->", flush=True)  # fmt: skip
    return list(result.widths.values()), f"{kept}/{total}"


def time_models(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, exports: Path
) -> dict[int, list[float]]:
    """Print a table row per model, width rounding and batch size; the fractions of the
    MAC bound reached, by rounding."""
    print(
        f"| model | {'MACs kept' if args.heads else 'ratio'} | MLP widths | batch | dense ms "
        "| pruned ms | speedup | MAC bound | of bound |\n|---|---|---|---|---|---|---|---|---|"
    )
    fractions: dict[int, list[float]] = {r: [] for r in args.round_to}
    for entry in args.models:
        name, ratio = entry.rsplit(":", 1)
        dense = timm.create_model(name, pretrained=False).eval()
        if args.stats:
            stats = vbprune.ActivationStats.load(args.stats)
        else:
            stats = synthetic_stats(dense, spread=args.spread, heads=args.heads)
        pruned, spans = {}, {}
        for round_to in args.round_to:
            model = copy.deepcopy(dense)
            if args.heads:
                widths, heads = prune_with_heads(
                    model, stats, float(ratio), round_to, name, args.head_weight
                )
                spans[round_to] = f"{min(widths)}-{max(widths)}, heads {heads}"
            else:
                widths = vbprune.apply_plan(
                    model, vbprune.plan_pruning(stats, float(ratio), round_to=round_to)
                ).values()
                spans[round_to] = f"{min(widths)}-{max(widths)}"
            pruned[round_to] = model
        # counted on the CPU in float32, before moving: MACs depend on neither
        dense_macs = vbprune.count_macs(dense)
        bounds = {r: dense_macs / vbprune.count_macs(m) for r, m in pruned.items()}
        pruned = {r: m.to(device, dtype) for r, m in pruned.items()}
        dense = dense.to(device, dtype)
        for batch_size in args.batch_sizes:
            x = torch.randn(batch_size, 3, 224, 224, device=device, dtype=dtype)
            runs = {"dense": runner(dense, x, args.runtime, exports)}
            runs.update({r: runner(m, x, args.runtime, exports) for r, m in pruned.items()})
            with torch.inference_mode():
                times = interleaved_times(runs, args.repeats, cuda=device.type == "cuda")
            for round_to in pruned:
                speedup = median_ratio(times["dense"], times[round_to])
                fraction = speedup / bounds[round_to]
                fractions[round_to].append(fraction)
                kind = "as ranked" if round_to == 1 else f"x{round_to}"
                print(
                    f"| {name} | {ratio} | {kind} {spans[round_to]} | {batch_size} "
                    f"| {statistics.median(times['dense']) * 1e3:.2f} "
                    f"| {statistics.median(times[round_to]) * 1e3:.2f} | {speedup:.2f}x "
                    f"| {bounds[round_to]:.2f}x | {fraction:.2f} |",
                    flush=True,
                )
    return fractions


if __name__ == "__main__":
    main()
