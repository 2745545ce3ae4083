"""``vbprune prune``: calibrate (or read statistics), prune, write the model and a report.

Output folder: ``model/`` (the pruned model with its card), ``stats.safetensors``,
``plan.json`` (replayable with ``vbprune.apply_plan``) and ``report.json``; it appears
complete or not at all.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..core.errors import ConfigError, StatisticsError
from .arguments import (
    add_covariance_fraction,
    add_data_arguments,
    add_model_arguments,
    add_pruning_arguments,
    positive_int,
    pruning_config,
)

HELP = "prune a model and write it with a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune prune``."""
    add_model_arguments(parser)
    parser.add_argument("--stats", help="statistics from `vbprune calibrate` (else --dataset)")
    add_data_arguments(parser, required=False)
    add_covariance_fraction(parser)
    add_pruning_arguments(parser)
    parser.add_argument("--eval-split", help="report top-1 before and right after pruning")
    parser.add_argument("--eval-samples", type=positive_int, help="images to evaluate")
    parser.add_argument("--output", required=True, help="folder for the pruned model")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="then upload to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")


def run(args: argparse.Namespace) -> int:
    """Prune ``--model`` by ``--ratio``; every input is checked before the long work."""
    import time

    from ..architectures import find_mlp_sites
    from ..architectures.interface import input_size
    from ..core.statistics import ActivationStats
    from ..evaluation.accuracy import top1_accuracy
    from ..evaluation.counting import count_macs, count_params
    from ..io.folders import check_output_directory
    from ..io.model_specs import record_spec
    from ..pruning import check_stats, prune_model
    from .runtime import calibrate, image_loader, make_accelerator, prepare_model

    config = pruning_config(args)
    if args.stats is None and args.dataset is None:
        raise ConfigError("give --stats FILE or --dataset D to calibrate on")
    if args.eval_split is not None and args.dataset is None:
        raise ConfigError("--eval-split needs --dataset")
    check_output_directory(args.output, args.overwrite, [args.model, args.stats, args.dataset])
    accelerator = make_accelerator()
    model = prepare_model(args, accelerator)
    sites = find_mlp_sites(model)
    eval_loader = None
    if args.eval_split is not None:  # checked now, not after an hour of calibration
        eval_loader = image_loader(
            args, model, accelerator, args.eval_split, args.eval_samples, labels=True
        )
    if args.stats is not None:
        stats = ActivationStats.load(args.stats)
        check_stats(sites, stats)  # before any work: a file from another model fails here
        if config.needs_covariance and any(s.c2 is None for s in stats.values()):
            need = "--compensate ls" if config.compensate == "ls" else "--criterion obs"
            raise StatisticsError(
                f"{need} needs the covariance: {args.stats} has none; run "
                "`vbprune calibrate --covariance` (or give --dataset)"
            )
        calibration = {"stats_file": str(args.stats)}
    else:
        stats, calibration = calibrate(args, model, accelerator, config.needs_covariance)

    def top1() -> tuple[float, int, float]:
        start = time.perf_counter()
        accuracy, count = top1_accuracy(model, eval_loader, accelerator)
        return accuracy, count, round(time.perf_counter() - start, 3)

    size = input_size(model)
    report: dict[str, Any] = {
        "model": record_spec(args.model),
        "pruning": config.to_dict(),
        "input_size": list(size),
        "calibration": calibration,
        "params": {"before": count_params(model)},
        "macs": {"before": count_macs(model, size)},
        "timings": {"calibration_s": calibration.get("seconds")},
    }
    if eval_loader is not None:
        accuracy, count, report["timings"]["eval_before_s"] = top1()
        report["accuracy"] = {
            "dataset": str(args.dataset), "split": args.eval_split, "samples": count,
            "top1_before": accuracy,
        }  # fmt: skip

    start = time.perf_counter()
    # with covariance, the report says how much of each fc2's output the removal loses
    diagnose = all(entry.c2 is not None for entry in stats.values())
    result = prune_model(model, stats, config=config, diagnose=diagnose)
    report["timings"]["prune_s"] = round(time.perf_counter() - start, 4)
    report["params"]["after"] = count_params(model)
    report["macs"]["after"] = count_macs(model, size)
    report["num_pruned"] = result.num_pruned
    report["original_widths"] = result.original_widths
    report["widths"] = result.widths
    # a hidden LayerNorm/GRN couples the neurons there: the mean fold is approximate
    report["approximate_sites"] = result.approximate_sites
    if result.lost_variance:  # with covariance: how much of each fc2's output is lost
        report["lost_variance"] = result.lost_variance
    if eval_loader is not None:
        accuracy, _, report["timings"]["eval_after_s"] = top1()
        report["accuracy"]["top1_after_pruning"] = accuracy
        skipped = eval_loader.report()  # both evaluations skip the same images
        if skipped:
            report["accuracy"]["skipped_images"] = skipped

    if accelerator.is_main_process:
        metadata = {"base_model": record_spec(args.model), "pruning": config.to_dict(),
                    "report": report}  # fmt: skip
        if not args.pretrained:  # what rebuilds the same random teacher for distill
            metadata["base_model_seed"] = args.seed
        _write_outputs(args, model, stats, result, report, metadata)
        print(_summary(report, args.output))
        if args.push_to_hub:
            from ..io.hub import push_folder

            url = push_folder(args.output, args.push_to_hub, private=args.private)
            print(f"pushed to {args.push_to_hub}: {url}")
    accelerator.wait_for_everyone()
    return 0


def _write_outputs(args, model, stats, result, report, metadata) -> None:
    import json

    from ..io.checkpoint import save_pretrained
    from ..io.folders import atomic_directory

    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        save_pretrained(model, tmp / "model", metadata=metadata)
        stats.save(tmp / "stats.safetensors")
        (tmp / "plan.json").write_text(json.dumps(result.plan.to_dict()))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))


def _summary(report: dict[str, Any], output: str) -> str:
    params, macs, pruning = report["params"], report["macs"], report["pruning"]
    lines = [
        f"pruned {report['num_pruned']} MLP neurons ({pruning['scope']}, ratio {pruning['ratio']})",
        f"params {params['before'] / 1e6:.2f} M -> {params['after'] / 1e6:.2f} M, "
        f"MACs {macs['before'] / 1e9:.3f} G -> {macs['after'] / 1e9:.3f} G",
    ]
    if "accuracy" in report:
        acc = report["accuracy"]
        lines.append(
            f"top-1 on {acc['split']} ({acc['samples']} images): "
            f"{acc['top1_before']:.4f} -> {acc['top1_after_pruning']:.4f}"
        )
    approximate = report.get("approximate_sites")
    if approximate:
        lines.append(
            f"note: {len(approximate)} MLP(s) normalise their hidden units (LayerNorm/GRN); "
            "there the mean fold is approximate, not exact"
        )
    lines.append(f"wrote {output}")
    return "\n".join(lines)
