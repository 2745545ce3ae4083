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


def run(args: argparse.Namespace) -> int:
    """Write ``report.json`` and ``report.md`` with accuracy, size and latency."""
    output = args.output or default_output(args.model, args.split)
    return evaluate(
        ModelOptions.from_args(args), DataOptions.from_args(args),
        OutputOptions.from_args(args, output=output), latency_repeats=args.latency_repeats,
        latency_seconds=args.latency_seconds,
    )  # fmt: skip


def evaluate(
    model_options: ModelOptions,
    data: DataOptions,
    out: OutputOptions,
    latency_repeats: int = 10,
    latency_seconds: float = 30.0,
) -> int:
    """Load, evaluate on every process's shard, count, time, write the report."""
    import json
    import time

    import torch

    from ..architectures.interface import input_size
    from ..evaluation.accuracy import evaluate_model
    from ..evaluation.counting import count_macs, count_params
    from ..evaluation.latency import device_name, measure_latency
    from ..io.folders import atomic_directory, check_output_directory
    from .runtime import image_loader, make_accelerator, prepare_model

    check_output_directory(out.output, out.overwrite, [model_options.model, data.dataset])
    accelerator = make_accelerator()
    model = prepare_model(model_options, accelerator)
    loader = image_loader(data, model, accelerator, data.split, data.num_samples, labels=True)
    start = time.perf_counter()
    metrics = evaluate_model(model, loader, accelerator)
    skipped = loader.report()
    seconds = time.perf_counter() - start
    size = input_size(model)
    param = next(model.parameters())
    batch = torch.zeros((data.batch_size, *size), device=param.device, dtype=param.dtype)
    report = {
        "model": model_options.model,
        "dataset": str(data.dataset),
        "split": data.split,
        **metrics,
        **({"skipped_images": skipped} if skipped else {}),
        "params": count_params(model),
        "macs": count_macs(model, size),
        "input_size": list(size),
        "latency": None
        if not latency_repeats
        else {
            "batch_size": data.batch_size,
            "seconds": measure_latency(model, batch, latency_repeats, max_seconds=latency_seconds),
            "device": device_name(param.device),
            "dtype": model_options.dtype,
        },
        "processes": accelerator.num_processes,
        "evaluation_s": round(seconds, 3),
    }
    if accelerator.is_main_process:
        table = markdown_table(report)
        with atomic_directory(out.output, overwrite=out.overwrite) as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2))
            (tmp / "report.md").write_text(table)
        print(table)
    accelerator.wait_for_everyone()
    return 0


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
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"
