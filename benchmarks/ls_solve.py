"""Time and peak memory of the least-squares compensation solve on a real-size model.

    python benchmarks/ls_solve.py --model deit_base_patch16_224 --ratio 0.55 [--obs]

Random statistics with a full covariance per MLP (what calibration gives does not change
the cost of the solve); times ``prune_model(..., compensate="ls")`` against
``compensate="mean"`` on copies of one model (goal: under 10 s for DeiT-B at 0.55), and
with ``--obs`` the OBS criterion's greedy order on top.
"""

from __future__ import annotations

import argparse
import copy
import resource
import time

import timm
import torch
from common import describe

import vbprune
from vbprune.core.statistics import NeuronStats


def random_stats(model: torch.nn.Module, seed: int = 0) -> vbprune.ActivationStats:
    """Means, variances and a random positive definite covariance for every MLP."""
    generator = torch.Generator().manual_seed(seed)
    sites = {}
    for site in vbprune.find_mlp_sites(model):
        width, count = site.width, 100_000
        factors = torch.randn(width, 64, generator=generator, dtype=torch.float64)
        cov = factors @ factors.T / 64 + torch.diag(torch.rand(width, generator=generator))
        mean = torch.randn(width, generator=generator, dtype=torch.float64)
        c2 = cov * (count - 1)
        sites[site.name] = NeuronStats(count, mean, c2.diagonal().clone(), c2)
    return vbprune.ActivationStats(sites)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="deit_base_patch16_224")
    parser.add_argument("--ratio", type=float, default=0.55)
    parser.add_argument("--obs", action="store_true", help="also criterion='obs' (slower)")
    args = parser.parse_args()
    print(describe(torch.device("cpu"), "float32"))
    model = timm.create_model(args.model, pretrained=False).eval()
    stats = random_stats(model)
    gib = sum(s.c2.numel() * 8 for s in stats.values()) / 2**30
    runs = [("variance", "mean", False), ("variance", "ls", False), ("variance", "ls", True)]
    if args.obs:
        runs.append(("obs", "ls", False))
    for criterion, mode, diagnose in runs:
        pruned = copy.deepcopy(model)
        start = time.perf_counter()
        vbprune.prune_model(pruned, stats, ratio=args.ratio, compensate=mode,
                            criterion=criterion, diagnose=diagnose)  # fmt: skip
        print(f"{args.model} at {args.ratio}, criterion={criterion}, compensate={mode}, "
              f"diagnose={diagnose}: {time.perf_counter() - start:.2f} s")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"covariances held: {gib:.2f} GiB; process peak resident memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()
