"""``vbprune prune``: calibrate (or read statistics), prune, write the model and a report.

``--ratio`` removes a share of the MLP neurons; ``--target-macs``/``--target-params``
prune to a share of the dense model's MACs/parameters, ``--target-speedup``/
``--target-latency`` to a latency measured on this device, and ``--heads`` takes
attention heads too (the report records the heads and the budget asked for and achieved).

Output folder: ``model/`` (the pruned model with its card), ``stats.safetensors``,
``plan.json`` (replayable with ``vbprune.apply_plan``) and ``report.json``; it appears
complete or not at all.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

from ..core.config import BUDGETS, PruningConfig
from ..core.errors import ConfigError
from .arguments import (
    add_covariance_fraction,
    add_data_arguments,
    add_model_arguments,
    add_pruning_arguments,
    positive_int,
    pruning_config,
)
from .options import DataOptions, ModelOptions, OutputOptions

HELP = "prune a model and write it with a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune prune``."""
    add_model_arguments(parser)
    parser.add_argument("--stats", help="statistics from `vbprune calibrate` (else --dataset)")
    parser.add_argument(
        "--accept-other-weights", action="store_true",
        help="use --stats recorded on other weights than --model's (refused otherwise)",
    )  # fmt: skip
    add_data_arguments(parser, required=False)
    add_covariance_fraction(parser)
    add_pruning_arguments(parser)
    parser.add_argument("--eval-split", help="report top-1 before and right after pruning")
    parser.add_argument("--eval-samples", type=positive_int, help="images to evaluate")
    parser.add_argument(
        "--measure-speedup", action="store_true",
        help="time the dense and the pruned model in turns (a batch of --batch-size) and "
        "put the measured speedup in the report and on the card",
    )  # fmt: skip
    parser.add_argument(
        "--refresh-latency-table", action="store_true",
        help="with --target-speedup/--target-latency: time every layer again instead of "
        "reading the cached table of this model and device",
    )  # fmt: skip
    parser.add_argument("--output", required=True, help="folder for the pruned model")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="then upload to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")


def run(args: argparse.Namespace) -> int:
    """Prune ``--model`` by ``--ratio`` (or to ``--target-macs``/``--target-params``);
    every input is checked before the long work."""
    return prune(
        ModelOptions.from_args(args), DataOptions.from_args(args), pruning_config(args),
        OutputOptions.from_args(args), stats_file=args.stats, eval_split=args.eval_split,
        eval_samples=args.eval_samples, accept_other_weights=args.accept_other_weights,
        measure_speedup=args.measure_speedup, target_latency_ms=args.target_latency_ms,
        refresh_latency_table=args.refresh_latency_table,
    )  # fmt: skip


def prune(
    model_options: ModelOptions,
    data: DataOptions,
    config: PruningConfig,
    out: OutputOptions,
    stats_file: str | None = None,
    eval_split: str | None = None,
    eval_samples: int | None = None,
    accept_other_weights: bool = False,
    measure_speedup: bool = False,
    target_latency_ms: float | None = None,
    refresh_latency_table: bool = False,
) -> int:
    """Load, calibrate (or read ``stats_file``), measure, prune, measure, write, push.

    With ``config.heads`` the statistics must cover the attention sites (calibrated with
    them, or a file from ``vbprune calibrate --heads``); with ``data.dataset`` up to
    :data:`~.arguments.PROBE_IMAGES` calibration images choose the weight of heads
    against neurons (KL to the dense logits), without it the default weight is used.
    A latency budget is timed on the device the model runs on here (``target_latency_ms``:
    milliseconds per batch, turned into the share of the dense model's latency).
    """
    from ..core.statistics import ActivationStats
    from ..io.folders import check_output_directory
    from ..io.model_specs import record_spec
    from ..planning.budget import check_budget
    from ..planning.steps import model_sites, site_units
    from .arguments import PROBE_IMAGES
    from .runtime import (
        calibrate,
        check_provenance,
        image_loader,
        make_accelerator,
        prepare_model,
        probe_images,
    )

    if stats_file is None and data.dataset is None:
        raise ConfigError("give --stats FILE or --dataset D to calibrate on")
    if eval_split is not None and data.dataset is None:
        raise ConfigError("--eval-split needs --dataset")
    check_output_directory(out.output, out.overwrite, [model_options.model, stats_file,
                                                       data.dataset])  # fmt: skip
    accelerator = make_accelerator()
    model = prepare_model(model_options, accelerator)
    # with heads, a model whose attention cannot lose heads is refused here
    sites, others = model_sites(model, config.heads)
    table = None
    if config.target_latency is not None:  # timed (or read from the cache) before calibrating
        table, config = _latency_table(accelerator, model, sites, config, target_latency_ms,
                                       refresh_latency_table)  # fmt: skip
    check_budget(model, sites, config, table)  # a budget out of reach: before calibrating
    eval_loader = None
    if eval_split is not None:  # checked now, not after an hour of calibration
        eval_loader = image_loader(data, model, accelerator, eval_split, eval_samples, True)
    if stats_file is not None:
        stats = ActivationStats.load(stats_file)
        # statistics of other weights are refused (one line), of another dataset warned of
        check_provenance(stats, model, data, accept_other_weights)
        need = config.covariance_need()  # as typed: --criterion obs
        need = need and f"--{need} {getattr(config, need)}"
        # before any work: a file of another model, without the covariance or (with
        # --heads) without the attention sites fails here
        site_units(sites, stats, need, required=True, others=others)
        calibration = {"stats_file": str(stats_file)}
    else:
        stats, calibration = calibrate(
            data, model, accelerator, config.needs_covariance, heads=config.heads,
            model_spec=record_spec(model_options.model),
        )  # fmt: skip
    images = None  # with heads and no weight given: the weight chosen by KL on them
    if config.heads and config.head_weight is None and data.dataset is not None:
        images = probe_images(data, model, PROBE_IMAGES)
        calibration["head_weight_images"] = len(images)
        images = images if len(images) else None

    report = _measure(model, {"model": record_spec(model_options.model),
                              "pruning": config.to_dict(), "calibration": calibration})  # fmt: skip
    report["timings"] = {"calibration_s": calibration.get("seconds")}
    if eval_loader is not None:
        accuracy, count, report["timings"]["eval_before_s"] = _top1(model, eval_loader)
        report["accuracy"] = {
            "dataset": str(data.dataset), "split": eval_split, "samples": count,
            "top1_before": accuracy,
        }  # fmt: skip

    start = time.perf_counter()
    # with covariance, the report says how much of each fc2's output the removal loses
    diagnose = all(entry.c2 is not None for entry in stats.values())
    dense = copy.deepcopy(model) if measure_speedup else None  # timed against the pruned
    result = _prune(accelerator, model, stats, config, diagnose, images, table)
    report["timings"]["prune_s"] = round(time.perf_counter() - start, 4)
    _measure(model, report, "after")
    report["num_pruned"] = result.num_pruned
    report["original_widths"] = result.original_widths
    report["widths"] = result.widths
    if result.heads:  # heads per attention site, before and after
        report["original_heads"] = result.original_heads
        report["heads"] = result.heads
    if result.budget:  # measure, asked, target, predicted, achieved, head_weight (kl)
        report["budget"] = dict(result.budget)
        if target_latency_ms is not None:  # what was typed, beside the share it became
            report["budget"]["asked_ms"] = target_latency_ms
    # a hidden LayerNorm/GRN couples the neurons there: the mean fold is approximate
    report["approximate_sites"] = result.approximate_sites
    if result.lost_variance:  # with covariance: how much of each fc2's output is lost
        report["lost_variance"] = result.lost_variance
    if eval_loader is not None:
        accuracy, _, report["timings"]["eval_after_s"] = _top1(model, eval_loader)
        report["accuracy"]["top1_after_pruning"] = accuracy
        skipped = eval_loader.report()  # both evaluations skip the same images
        if skipped:
            report["accuracy"]["skipped_images"] = skipped

    if dense is not None:
        report["speedup"] = _speedup(dense, model, data.batch_size, model_options.dtype)
        del dense
    elif report.get("budget", {}).get("measure") == "latency":  # measured while planning
        budget = report["budget"]
        report["speedup"] = {
            "value": round(1 / budget["achieved"], 4), "batch_size": budget["batch_size"],
            "device": budget["device"], "dtype": model_options.dtype,
        }  # fmt: skip
    if accelerator.is_main_process:
        metadata = {"base_model": record_spec(model_options.model),
                    **({"speedup": report["speedup"]} if "speedup" in report else {}),
                    "pruning": config.to_dict(), "report": report}  # fmt: skip
        if not model_options.pretrained:  # what rebuilds the same random teacher for distill
            metadata["base_model_seed"] = model_options.seed
        _write_outputs(out, model, stats, result, report, metadata)
        print(_summary(report, out.output))
        if out.push_to_hub:
            from ..io.hub import push_folder

            url = push_folder(out.output, out.push_to_hub, private=out.private)
            print(f"pushed to {out.push_to_hub}: {url}")
    accelerator.wait_for_everyone()
    return 0


def _latency_table(accelerator, model, sites, config: PruningConfig, milliseconds, refresh):
    """The latency table of a latency budget, said in one line, and the config with the
    share ``--target-latency MS`` asks for (of the dense model timed now: a cached
    table's dense time may be of another hour). With several processes the main one
    times, the others get its numbers."""
    import dataclasses

    from ..architectures.timing import measure_latencies, timing_batch
    from ..planning.latency import LatencyTable, latency_table
    from .arguments import latency_share
    from .runtime import main_decides

    batch = config.latency_batch or 1
    table = LatencyTable.from_dict(main_decides(
        accelerator,
        lambda: latency_table(model, sites, batch_size=batch, refresh=refresh).to_dict(),
    ))  # fmt: skip
    if milliseconds is not None:
        dense = main_decides(accelerator, lambda: measure_latencies(
            {"dense": model}, timing_batch(model, batch), repeats=10, max_seconds=30.0
        )["dense"])  # fmt: skip
        share = latency_share(milliseconds, dense, table)
        config = dataclasses.replace(config, target_latency=share)
    print(f"latency on {table.device}, batch {table.batch_size}: dense {table.dense * 1e3:.3g} "
          f"ms, target {config.target_latency * table.dense * 1e3:.3g} ms "
          f"({1 / config.target_latency:.3g}x)")  # fmt: skip
    return table, config


def _prune(accelerator, model, stats, config: PruningConfig, diagnose, images, table):
    """``prune_model`` on every process alike: where the plan depends on timing (a latency
    budget) or on each process's images (the KL choice of heads), the main process makes
    it and the others apply it (an error on the main process stops them all)."""
    from ..pruning import prune_model

    decided = accelerator.num_processes > 1 and (table is not None or images is not None)
    if not decided:
        return prune_model(model, stats, config=config, diagnose=diagnose, images=images,
                           latency_table=table)  # fmt: skip
    from ..core.selection import PruningPlan
    from .runtime import main_decides

    made = []

    def make() -> dict:
        made.append(prune_model(model, stats, config=config, diagnose=diagnose,
                                images=images, latency_table=table))  # fmt: skip
        return made[0].plan.to_dict()

    plan = main_decides(accelerator, make)
    if made:
        return made[0]
    return prune_model(model, stats, config=config, diagnose=diagnose,
                       plan=PruningPlan.from_dict(plan))  # fmt: skip


def _speedup(dense, pruned, batch_size: int, dtype: str) -> dict[str, Any]:
    """Dense against pruned latency, measured in turns on one batch of zeros at the
    model's input size: what the card's "Measured speedup" shows."""

    from ..evaluation.latency import device_name, measure_latencies, timing_batch

    batch = timing_batch(pruned, batch_size)
    medians = measure_latencies({"dense": dense, "pruned": pruned}, batch, repeats=10,
                                max_seconds=60.0)  # fmt: skip
    return {
        "value": round(medians["dense"] / medians["pruned"], 4),
        "dense_ms": medians["dense"] * 1e3,
        "pruned_ms": medians["pruned"] * 1e3,
        "batch_size": batch_size, "device": device_name(batch.device), "dtype": dtype,
    }  # fmt: skip


def _measure(model, report: dict[str, Any], when: str = "before") -> dict[str, Any]:
    """Params and MACs of ``model`` into ``report`` (at the input size it records)."""
    from ..architectures.interface import input_size
    from ..evaluation.counting import count_macs, count_params

    size = report.setdefault("input_size", list(input_size(model)))
    report.setdefault("params", {})[when] = count_params(model)
    report.setdefault("macs", {})[when] = count_macs(model, size)
    return report


def _top1(model, loader) -> tuple[float, int, float]:
    """Top-1 over every process's shard, the image count and the seconds it took."""
    from ..evaluation.accuracy import top1_accuracy

    start = time.perf_counter()
    accuracy, count = top1_accuracy(model, loader, loader.accelerator)
    return accuracy, count, round(time.perf_counter() - start, 3)


def _write_outputs(out: OutputOptions, model, stats, result, report, metadata) -> None:
    import json

    from ..io.checkpoint import save_pretrained
    from ..io.folders import atomic_directory

    with atomic_directory(out.output, overwrite=out.overwrite) as tmp:
        save_pretrained(model, tmp / "model", metadata=metadata,
                        location=Path(out.output) / "model")  # fmt: skip
        stats.save(tmp / "stats.safetensors")
        (tmp / "plan.json").write_text(json.dumps(result.plan.to_dict()))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))


def _budget_line(budget: dict[str, Any], pruning: dict[str, Any]) -> str:
    """What the budget asked and achieved (and how heads were weighed), in one line."""
    if budget.get("measure") == "latency":
        line = (f"latency on {budget['device']}, batch {budget['batch_size']}: "
                f"{1 / budget['asked']:.3g}x faster asked, {1 / budget['achieved']:.3g}x "
                f"measured (the table predicted {1 / budget['predicted']:.3g}x)")  # fmt: skip
    else:
        what = "MACs" if budget.get("measure") == "macs" else "params"
        asked = budget.get("asked")  # None: a ratio with heads, its MACs as the target
        target = f"{asked:g}" if asked is not None else f"{budget.get('target', 0):.4g}"
        of_ratio = "" if asked is not None else f" (what ratio {pruning.get('ratio')} removes)"
        line = (f"budget: {target} of the dense model's {what} asked{of_ratio}, "
                f"{budget['achieved']:.4g} kept")  # fmt: skip
    if budget.get("head_weight") is not None:
        how = (
            "chosen by KL on calibration images" if budget.get("kl")
            else "--head-weight" if "head_weight" in pruning
            else "the default: no --dataset images to choose it on"
        )  # fmt: skip
        line += f"; heads weighed {budget['head_weight']:g} against neurons ({how})"
    return line


def _summary(report: dict[str, Any], output: str) -> str:
    params, macs, pruning = report["params"], report["macs"], report["pruning"]
    asked = ", ".join(f"{name} {pruning[name]:g}" for name in BUDGETS if name in pruning)
    removed = f"{report['num_pruned']} MLP neurons"
    if "heads" in report:
        was, now = sum(report["original_heads"].values()), sum(report["heads"].values())
        removed += f" and {was - now} of {was} attention heads"
    lines = [
        f"pruned {removed} ({pruning['scope']}, {asked}, criterion {pruning['criterion']})",
        f"params {params['before'] / 1e6:.2f} M -> {params['after'] / 1e6:.2f} M, "
        f"MACs {macs['before'] / 1e9:.3f} G -> {macs['after'] / 1e9:.3f} G",
    ]
    budget = report.get("budget") or {}
    if budget.get("achieved") is not None:
        lines.append(_budget_line(budget, pruning))
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
