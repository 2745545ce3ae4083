"""Prune time (selection + surgery) and dense-vs-pruned latency, measured side by side.

    python benchmarks/prune_time.py                          # DeiT-B at 0.55, CPU
    python benchmarks/prune_time.py --models deit_tiny_patch16_224:0.45 \
        deit_small_patch16_224:0.5 deit_base_patch16_224:0.55 --device cuda --dtype bfloat16

Weights are random (pretrained=False) and the statistics synthetic: neither changes the
time of selection and surgery, nor the latency of the pruned shapes.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import timm
import torch

import vbprune
from vbprune.evaluation import measure_latency


def synthetic_stats(model: torch.nn.Module, seed: int = 0) -> vbprune.ActivationStats:
    g = torch.Generator().manual_seed(seed)
    return vbprune.ActivationStats(
        {
            site.name: vbprune.NeuronStats(
                10_000,
                torch.randn(site.hidden_size, generator=g, dtype=torch.float64),
                torch.rand(site.hidden_size, generator=g, dtype=torch.float64),
            )
            for site in vbprune.find_mlp_sites(model)
        }
    )


def measure(model_name: str, ratio: float, args: argparse.Namespace) -> None:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    dense = timm.create_model(model_name, pretrained=False).eval().to(device, dtype)
    stats = synthetic_stats(dense)
    select, surgery = [], []
    for _ in range(args.repeats):
        model = copy.deepcopy(dense)
        start = time.perf_counter()
        plan = vbprune.plan_pruning(stats, ratio)
        middle = time.perf_counter()
        vbprune.apply_plan(model, plan)
        if device.type == "cuda":
            torch.cuda.synchronize()
        select.append(middle - start)
        surgery.append(time.perf_counter() - middle)
    pruned = model
    print(
        f"{model_name} ratio {ratio}: selection {statistics.median(select) * 1e3:.1f} ms, "
        f"surgery {statistics.median(surgery) * 1e3:.1f} ms (median of {args.repeats})"
    )
    bound = vbprune.count_macs(dense) / vbprune.count_macs(pruned)
    for batch_size in args.batch_sizes:
        batch = torch.randn(batch_size, 3, 224, 224, device=device, dtype=dtype)
        t_dense = measure_latency(dense, batch, args.repeats)
        t_pruned = measure_latency(pruned, batch, args.repeats)
        speedup = t_dense / t_pruned
        print(
            f"  batch {batch_size}: dense {t_dense * 1e3:.2f} ms, pruned {t_pruned * 1e3:.2f} ms, "
            f"speedup {speedup:.2f}x, MAC bound {bound:.2f}x ({speedup / bound:.2f} of bound)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["deit_base_patch16_224:0.55"],
        help="timm model names with their ratio, NAME:RATIO",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {device} ({name or platform.machine()}), {args.dtype}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    for entry in args.models:
        model_name, ratio = entry.rsplit(":", 1)
        measure(model_name, float(ratio), args)


if __name__ == "__main__":
    main()
