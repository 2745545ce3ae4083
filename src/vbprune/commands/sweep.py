"""``vbprune sweep``: accuracy against size on your own model and data
(``--model M --dataset D``: :mod:`.sweep_model`), or, without ``--model``, the paper's
ablation at small scale on the digits ViT.

One calibration (with covariance), then pruning at many ratios with variance, random,
weight-magnitude and OBS selection, each with the mean fold, without it and with
least-squares compensation (:func:`vbprune.evaluation.sweep.sweep`); with
``--target-macs``/``--heads``, pruning to shares of the MACs with MLP neurons only and with
attention heads too; writes ``sweep.png``, ``sweep.md`` and ``sweep.json``.
"""

from __future__ import annotations

import argparse

from ..core.compensation import COMPENSATIONS
from ..core.config import PruningConfig
from ..core.criteria import CRITERIA
from .arguments import (
    PROBE_IMAGES,
    add_covariance_fraction,
    add_data_arguments,
    add_model_arguments,
    positive_int,
)

HELP = "accuracy vs size over budgets, criteria and compensations (your model, or digits)"
HEADS_TARGETS = (0.7, 0.5, 0.4, 0.3)  # the MAC budgets of --heads without --target-macs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune sweep``."""
    add_model_arguments(p, required=False)
    add_data_arguments(p, required=False)
    p.add_argument("--eval-split", default="validation", help="split to evaluate on (--model)")
    p.add_argument("--eval-samples", type=positive_int, help="images to evaluate (--model)")
    p.add_argument("--targets", type=float, nargs="+", metavar="F", default=[],
                   help="shares of the MACs kept, one point each (--model)")  # fmt: skip
    p.add_argument("--latency-batch", type=positive_int, default=8,
                   help="images per timed forward of dense and pruned (--model)")  # fmt: skip
    p.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=None,
        help="fractions of MLP neurons removed (default 0.1 0.3 0.5 0.7 0.8 0.9)",
    )
    p.add_argument("--criteria", nargs="+", choices=list(CRITERIA), default=None,
                   help="selection criteria to compare (default: all on digits; with --model "
                   "the PruningConfig's own)")  # fmt: skip
    p.add_argument("--compensations", "--compensate", nargs="+", choices=list(COMPENSATIONS),
                   default=None, help="compensations to compare (default: all on digits; "
                   "mean with --model)")  # fmt: skip
    p.add_argument("--output", default="vbprune-sweep", help="folder for sweep.png and the table")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument("--target-macs", type=float, nargs="+", metavar="F", default=[],
                   help="also prune to these shares of the MACs kept, in (0, 1] (MLP neurons "
                   "only; with --heads, attention heads with them too)")  # fmt: skip
    p.add_argument("--heads", action="store_true",
                   help="add the curve of heads + MLP neurons against the MACs kept (at "
                   f"--target-macs; default {' '.join(map(str, HEADS_TARGETS))}), the "
                   f"weight of heads chosen on {PROBE_IMAGES} training images")  # fmt: skip
    p.add_argument("--budget-compensate", choices=list(COMPENSATIONS), default="ls",
                   help="the compensation of the --target-macs/--heads rows")  # fmt: skip
    add_covariance_fraction(p)


DEFAULT_RATIOS = [0.1, 0.3, 0.5, 0.7, 0.8, 0.9]


def run(args: argparse.Namespace) -> int:
    """Sweep ``--model`` on ``--dataset`` (or the digits ViT); write the outputs."""
    args.ratios_given = args.ratios is not None
    args.ratios = args.ratios or list(DEFAULT_RATIOS)
    if args.model is not None:
        from ..core.errors import ConfigError
        from .sweep_model import run_model_sweep

        if args.dataset is None:
            raise ConfigError("--model needs --dataset to calibrate and evaluate on")
        return run_model_sweep(args)
    args.criteria = args.criteria or list(CRITERIA)
    args.compensations = args.compensations or list(COMPENSATIONS)
    return run_digits(args)


def run_digits(args: argparse.Namespace) -> int:
    """Sweep the digits ViT; write sweep.png, sweep.md and sweep.json."""
    import json

    from .._digits import accuracy, load_digits_tensors, trained_digits_vit
    from ..architectures.interface import input_size
    from ..calibration import VarianceCalibrator
    from ..evaluation.sweep import plot, sweep, table
    from ..io.folders import atomic_directory

    targets = args.target_macs or (list(HEADS_TARGETS) if args.heads else [])
    for ratio in args.ratios:  # every ratio and budget checked before the work
        PruningConfig(ratio)
    for target in targets:
        PruningConfig(target_macs=target, heads=args.heads, compensate=args.budget_compensate)
    train_x, train_y, test_x, test_y = load_digits_tensors()
    model = trained_digits_vit(train_x, train_y)
    # once, for every ratio; the covariance (4 MLPs of 256) for least squares
    calibrator = VarianceCalibrator(
        model, covariance=True, covariance_fraction=args.covariance_fraction, heads=args.heads
    )
    stats = calibrator.run(train_x.split(256))
    score = lambda m: accuracy(m, test_x, test_y)  # noqa: E731
    rows = sweep(model, stats, args.ratios, score, input_size(model), criteria=args.criteria,
                 folds=args.compensations, target_macs=targets, heads=args.heads,
                 images=train_x[:PROBE_IMAGES] if args.heads else None,
                 budget_compensate=args.budget_compensate)  # fmt: skip
    with atomic_directory(args.output, overwrite=args.overwrite) as out:
        plot(rows, out / "sweep.png")
        (out / "sweep.md").write_text(table(rows))
        (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    print(table(rows))
    print(f"wrote {args.output}")
    return 0
