"""``vbprune evaluate``: top-1/top-5, loss, size and latency of a model on a dataset."""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import add_data_arguments, add_model_arguments, non_negative_int, positive_float
from .options import DataOptions, ModelOptions, OutputOptions

HELP = "top-1/top-5, loss, size and latency of a model on a dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune evaluate``."""
    add_model_arguments(parser)
    add_data_arguments(parser, required=True, split="validation", purpose="evaluate on")
    parser.add_argument("--latency-repeats", type=non_negative_int, default=10,
                        help="timed forwards of one batch (0: no latency)")  # fmt: skip
    parser.add_argument(
        "--latency-seconds",
        type=positive_float,
        default=30.0,
        help="stop timing after this long (at least one forward is timed)",
    )
    parser.add_argument(
        "--output",
        help="folder for the report (default: evaluation-<model>-<split>, so that runs on "
        "other models do not collide)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    parser.add_argument(
        "--baseline", metavar="DENSE",
        help="also evaluate this model (the dense one, same forms as --model) on the same "
        "images, time both in turns, and report the speedup",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Write ``report.json`` and ``report.md`` with accuracy, size and latency."""
    output = args.output or default_output(args.model, args.split)
    return evaluate(
        ModelOptions.from_args(args), DataOptions.from_args(args),
        OutputOptions.from_args(args, output=output), latency_repeats=args.latency_repeats,
        latency_seconds=args.latency_seconds, baseline=args.baseline,
    )  # fmt: skip


def evaluate(
    model_options: ModelOptions,
    data: DataOptions,
    out: OutputOptions,
    latency_repeats: int = 10,
    latency_seconds: float = 30.0,
    baseline: str | None = None,
) -> int:
    """Load, evaluate on every process's shard, count, time, write the report. With
    ``baseline`` the dense model is evaluated on the same images too, both are timed in
    turns, and the report has the speedup (baseline latency over the model's)."""
    import dataclasses
    import json

    from ..io.folders import atomic_directory, check_output_directory
    from .runtime import make_accelerator, prepare_model

    check_output_directory(out.output, out.overwrite,
                           [model_options.model, data.dataset, baseline])  # fmt: skip
    accelerator = make_accelerator()
    model = prepare_model(model_options, accelerator)
    dense = None
    if baseline is not None:  # loaded now: a bad path fails before the evaluation
        dense = prepare_model(dataclasses.replace(model_options, model=baseline), accelerator)
    report = {"model": model_options.model, "dataset": str(data.dataset), "split": data.split,
              **_measure(model, data, accelerator)}  # fmt: skip
    if dense is not None:
        report["baseline"] = {"model": baseline, **_measure(dense, data, accelerator)}
    report["latency"] = _latency(model, dense, data, model_options.dtype, latency_repeats,
                                 latency_seconds)  # fmt: skip
    if dense is not None and report["latency"] is not None:
        latency = report["latency"]
        report["speedup"] = round(latency["baseline_seconds"] / latency["seconds"], 4)
    report["processes"] = accelerator.num_processes
    if accelerator.is_main_process:
        table = markdown_table(report)
        with atomic_directory(out.output, overwrite=out.overwrite) as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2))
            (tmp / "report.md").write_text(table)
        print(table)
    accelerator.wait_for_everyone()
    return 0


def _measure(model, data: DataOptions, accelerator) -> dict[str, Any]:
    """Accuracy and loss on every process's shard of the split, params and MACs."""
    import time

    from ..architectures.interface import input_size
    from ..evaluation.accuracy import evaluate_model
    from ..evaluation.counting import count_macs, count_params
    from .runtime import image_loader

    loader = image_loader(data, model, accelerator, data.split, data.num_samples, labels=True)
    start = time.perf_counter()
    metrics = evaluate_model(model, loader, accelerator)
    skipped = loader.report()
    size = input_size(model)
    return {
        **metrics,
        **({"skipped_images": skipped} if skipped else {}),
        "params": count_params(model),
        "macs": count_macs(model, size),
        "input_size": list(size),
        "evaluation_s": round(time.perf_counter() - start, 3),
    }


def _latency(model, dense, data: DataOptions, dtype: str, repeats: int, seconds: float):
    """Median seconds per batch of the model (and of the baseline, timed in turns with
    it), or ``None`` without repeats."""
    from ..evaluation.latency import (
        device_name,
        measure_latencies,
        measure_latency,
        timing_batch,
    )

    if not repeats:
        return None
    batch = timing_batch(model, data.batch_size)
    latency = {"batch_size": data.batch_size, "device": device_name(batch.device),
               "dtype": dtype}  # fmt: skip
    if dense is None:
        latency["seconds"] = measure_latency(model, batch, repeats, max_seconds=seconds)
        return latency
    medians = measure_latencies({"model": model, "baseline": dense}, batch, repeats, seconds)
    latency["seconds"], latency["baseline_seconds"] = medians["model"], medians["baseline"]
    return latency


def default_output(model: str, split: str) -> str:
    """``evaluation-<model>-<split>``: the model's name (a folder's, or its parent's for a
    ``model/`` folder) so that evaluations of different models do not collide."""
    from pathlib import Path

    name = model.split(":", 1)[-1].rstrip("/")
    path = Path(name)
    if path.name == "model" and path.parent.name:
        path = path.parent
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in path.name) or "model"
    return f"evaluation-{safe}-{split}"


def markdown_table(report: dict[str, Any]) -> str:
    """The evaluation report as a two-column Markdown table."""
    latency = report["latency"]
    rows = [
        ("model", report["model"]),
        ("data", f"{report['dataset']} / {report['split']} ({report['samples']} images)"),
        ("top-1", f"{100 * report['top1_accuracy']:.2f} %"),
        ("top-5", f"{100 * report['top5_accuracy']:.2f} %" if "top5_accuracy" in report else "-"),
        ("loss", f"{report['loss']:.4f}"),
        ("params", f"{report['params'] / 1e6:.2f} M"),
        ("MACs", f"{report['macs'] / 1e9:.3f} G at {'x'.join(map(str, report['input_size']))}"),
        ("latency", "not measured" if latency is None else
                    f"{latency['seconds'] * 1e3:.2f} ms per batch of {latency['batch_size']} "
                    f"({latency['device']}, {latency['dtype']})"),
    ]  # fmt: skip
    base = report.get("baseline")
    if base is not None:  # dense against pruned, side by side
        rows += [
            ("baseline", base["model"]),
            ("baseline top-1", f"{100 * base['top1_accuracy']:.2f} %"),
            ("baseline params", f"{base['params'] / 1e6:.2f} M"),
            ("baseline MACs", f"{base['macs'] / 1e9:.3f} G"),
        ]  # fmt: skip
        if latency is not None:
            rows += [
                ("baseline latency", f"{latency['baseline_seconds'] * 1e3:.2f} ms"),
                ("speedup", f"{report['speedup']:.2f}x (measured in turns, "
                            f"{latency['device']})"),
            ]  # fmt: skip
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"
