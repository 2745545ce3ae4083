"""``vbprune`` command line: calibrate, prune.

Every command runs as one process or under ``accelerate launch`` / ``torchrun`` (each
process reads its own shard; statistics and accuracy are merged exactly). Only the main
process writes, and an output folder appears complete or not at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .architectures import UnsupportedModelError, find_mlp_sites
from .calibration import VarianceCalibrator, check_process_count
from .checkpoint import save_pretrained
from .counting import count_macs, count_params
from .data import ImageCollator, image_transform, load_image_dataset, make_loader
from .evaluation import top1_accuracy
from .models import MODEL_SPEC_HELP, input_size, load_model
from .outputs import check_output_directory
from .pruning import check_stats, prune_model
from .selection import SCOPES, validate_options
from .statistics import ActivationStats

DTYPES = ("float32", "bfloat16", "float16", "float64")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=MODEL_SPEC_HELP)
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load trained weights (--no-pretrained: architecture only)",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="model precision")


def _add_data_args(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("calibration data")
    group.add_argument(
        "--dataset",
        required=required,
        help="Hub dataset id (ImageNet: ILSVRC/imagenet-1k) or a folder ROOT with "
        "ROOT/train/<class>/* and ROOT/val/<class>/*",
    )
    group.add_argument("--split", default="train", help="split to calibrate on")
    group.add_argument("--num-samples", type=int, default=None, help="images (default: all)")
    group.add_argument("--batch-size", type=int, default=64, help="images per process step")
    group.add_argument("--num-workers", type=int, default=4, help="data-loading workers")
    group.add_argument("--image-column", default="image")
    group.add_argument("--label-column", default="label")
    group.add_argument("--streaming", action="store_true", help="stream a Hub dataset")
    group.add_argument("--seed", type=int, default=0, help="shuffle seed before sampling")


def build_parser() -> argparse.ArgumentParser:
    """The ``vbprune`` argument parser (subcommands ``calibrate`` and ``prune``)."""
    parser = argparse.ArgumentParser(
        prog="vbprune", description="Variance-Based Pruning of trained vision models."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    calibrate = commands.add_parser(
        "calibrate", help="record post-activation MLP statistics on a dataset"
    )
    _add_model_args(calibrate)
    _add_data_args(calibrate, required=True)
    calibrate.add_argument("--output", required=True, help="statistics file (.safetensors)")
    calibrate.set_defaults(func=calibrate_command)

    prune = commands.add_parser("prune", help="prune a model and write it with a report")
    _add_model_args(prune)
    prune.add_argument("--stats", help="statistics from `vbprune calibrate` (else --dataset)")
    _add_data_args(prune, required=False)
    prune.add_argument("--ratio", type=float, required=True, help="fraction removed, [0, 1)")
    prune.add_argument("--scope", choices=SCOPES, default="global")
    prune.add_argument("--round-to", type=int, default=1, help="kept widths multiple of N")
    prune.add_argument("--min-keep", type=int, default=1, help="neurons kept per MLP at least")
    prune.add_argument(
        "--compensate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fold removed means into the next bias (--no-compensate: ablation)",
    )
    prune.add_argument("--eval-split", help="report top-1 before and right after pruning")
    prune.add_argument("--eval-samples", type=int, default=None, help="images to evaluate")
    prune.add_argument("--output", required=True, help="folder for the pruned model")
    prune.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    prune.add_argument("--push-to-hub", metavar="REPO_ID", help="then upload to this Hub repo")
    prune.add_argument("--private", action="store_true", help="create the Hub repo private")
    prune.set_defaults(func=prune_command)

    evaluate = commands.add_parser(
        "evaluate", help="top-1/top-5, loss, size and latency of a model on a dataset"
    )
    _add_model_args(evaluate)
    _add_data_args(evaluate, required=True)
    evaluate.set_defaults(split="validation")
    evaluate.add_argument("--latency-repeats", type=int, default=10, help="timed forwards")
    evaluate.add_argument("--output", default="evaluation", help="folder for the report")
    evaluate.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    evaluate.set_defaults(func=evaluate_command)

    from .demo import add_demo_parser
    from .distill_command import add_distill_parser
    from .sweep import add_sweep_parser

    add_distill_parser(commands)
    add_demo_parser(commands)
    add_sweep_parser(commands)

    push = commands.add_parser("push", help="upload a pruned model folder to the Hub")
    push.add_argument("directory", help="a `vbprune prune` output or a saved model folder")
    push.add_argument("--repo-id", required=True, help="user/name on the Hub")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--token", help="Hub token (default: the logged-in one)")
    push.add_argument("--revision", help="branch to push to")
    push.set_defaults(func=push_command)
    return parser


def evaluate_command(args: argparse.Namespace) -> int:
    """``vbprune evaluate``: report.json and report.md with accuracy, size and latency."""
    from .evaluation import evaluate_model, measure_latency
    from .outputs import atomic_directory

    check_output_directory(args.output, args.overwrite)
    accelerator = _accelerator()
    model = _prepare_model(args, accelerator)
    loader = _loader(args, model, accelerator, args.split, args.num_samples, labels=True)
    start = time.perf_counter()
    metrics = evaluate_model(model, loader, accelerator)
    seconds = time.perf_counter() - start
    size = input_size(model)
    param = next(model.parameters())
    batch = torch.zeros((args.batch_size, *size), device=param.device, dtype=param.dtype)
    report = {
        "model": args.model,
        "dataset": str(args.dataset),
        "split": args.split,
        **metrics,
        "params": count_params(model),
        "macs": count_macs(model, size),
        "input_size": list(size),
        "latency": {
            "batch_size": args.batch_size,
            "seconds": measure_latency(model, batch, args.latency_repeats),
            "device": _device_name(param.device),
            "dtype": args.dtype,
        },
        "processes": accelerator.num_processes,
        "evaluation_s": round(seconds, 3),
    }
    if accelerator.is_main_process:
        table = _markdown_table(report)
        with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2))
            (tmp / "report.md").write_text(table)
        print(table)
    accelerator.wait_for_everyone()
    return 0


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def _markdown_table(report: dict[str, Any]) -> str:
    latency = report["latency"]
    rows = [
        ("model", report["model"]),
        ("data", f"{report['dataset']} / {report['split']} ({report['samples']} images)"),
        ("top-1", f"{100 * report['top1_accuracy']:.2f} %"),
        ("top-5", f"{100 * report['top5_accuracy']:.2f} %" if "top5_accuracy" in report else "-"),
        ("loss", f"{report['loss']:.4f}"),
        ("params", f"{report['params'] / 1e6:.2f} M"),
        ("MACs", f"{report['macs'] / 1e9:.3f} G at {'x'.join(map(str, report['input_size']))}"),
        ("latency", f"{latency['seconds'] * 1e3:.2f} ms per batch of {latency['batch_size']} "
                    f"({latency['device']}, {latency['dtype']})"),
    ]  # fmt: skip
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"


def push_command(args: argparse.Namespace) -> int:
    """``vbprune push``: upload a saved pruned model with its model card."""
    from .hub import push_folder

    url = push_folder(
        args.directory, args.repo_id, private=args.private, token=args.token,
        revision=args.revision,
    )  # fmt: skip
    print(f"pushed {args.directory} to {args.repo_id}: {url}")
    return 0


def _accelerator():
    from accelerate import Accelerator

    accelerator = Accelerator()
    check_process_count(accelerator)  # before loading anything
    return accelerator


def _prepare_model(args: argparse.Namespace, accelerator) -> torch.nn.Module:
    model = load_model(args.model, pretrained=args.pretrained)
    return model.to(accelerator.device, getattr(torch, args.dtype)).eval()


def _loader(args, model, accelerator, split: str, num_samples, labels: bool):
    dataset = load_image_dataset(
        args.dataset,
        split,
        image_column=args.image_column,
        label_column=args.label_column if labels else None,
        num_samples=num_samples,
        streaming=args.streaming,
        shuffle_seed=args.seed,
    )
    collate = ImageCollator(
        image_transform(model), args.image_column, args.label_column if labels else None
    )
    return make_loader(dataset, collate, args.batch_size, args.num_workers, accelerator)


def _calibrate(args, model, accelerator) -> tuple[ActivationStats, dict[str, Any]]:
    loader = _loader(args, model, accelerator, args.split, args.num_samples, labels=False)
    start = time.perf_counter()
    stats = VarianceCalibrator(model, accelerator=accelerator).run(loader)
    seconds = time.perf_counter() - start
    first = next(iter(stats.values()))
    info = {
        "dataset": str(args.dataset),
        "split": args.split,
        "num_samples_requested": args.num_samples,
        "samples_first_mlp": first.count,
        "processes": accelerator.num_processes,
        "seconds": round(seconds, 3),
    }
    return stats, info


def calibrate_command(args: argparse.Namespace) -> int:
    """``vbprune calibrate``: statistics of every MLP, written to ``--output``."""
    accelerator = _accelerator()
    output = Path(args.output)
    if output.is_dir():
        raise FileExistsError(f"--output {output} is a folder; give a .safetensors file path")
    blocking = next((p for p in output.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise FileExistsError(f"cannot write {output}: {blocking} is a file")
    model = _prepare_model(args, accelerator)
    stats, info = _calibrate(args, model, accelerator)
    if accelerator.is_main_process:
        stats.save(output)
        print(f"wrote statistics of {len(stats)} MLPs ({info['seconds']} s) to {output}")
    accelerator.wait_for_everyone()
    return 0


def _top1(loader, model, accelerator) -> tuple[float, int, float]:
    start = time.perf_counter()
    accuracy, count = top1_accuracy(model, loader, accelerator)
    return accuracy, count, time.perf_counter() - start


def prune_command(args: argparse.Namespace) -> int:
    """``vbprune prune``: calibrate (or read statistics), prune, write model and report."""
    validate_options(args.ratio, args.scope, args.min_keep, args.round_to)
    if args.stats is None and args.dataset is None:
        raise ValueError("give --stats FILE or --dataset D to calibrate on")
    if args.eval_split is not None and args.dataset is None:
        raise ValueError("--eval-split needs --dataset")
    check_output_directory(args.output, args.overwrite)
    accelerator = _accelerator()
    model = _prepare_model(args, accelerator)
    sites = find_mlp_sites(model)
    eval_loader = None
    if args.eval_split is not None:  # checked now, not after an hour of calibration
        eval_loader = _loader(
            args, model, accelerator, args.eval_split, args.eval_samples, labels=True
        )
    if args.stats is not None:
        stats = ActivationStats.load(args.stats)
        check_stats(sites, stats)  # before any work: a file from another model fails here
        calibration = {"stats_file": str(args.stats)}
    else:
        stats, calibration = _calibrate(args, model, accelerator)

    size = input_size(model)
    report: dict[str, Any] = {
        "model": args.model,
        "ratio": args.ratio,
        "scope": args.scope,
        "round_to": args.round_to,
        "min_keep": args.min_keep,
        "compensate": args.compensate,
        "input_size": list(size),
        "calibration": calibration,
        "params": {"before": count_params(model)},
        "macs": {"before": count_macs(model, size)},
        "timings": {"calibration_s": calibration.get("seconds")},
    }
    if eval_loader is not None:
        top1, count, seconds = _top1(eval_loader, model, accelerator)
        report["accuracy"] = {
            "dataset": str(args.dataset), "split": args.eval_split, "samples": count,
            "top1_before": top1,
        }  # fmt: skip
        report["timings"]["eval_before_s"] = round(seconds, 3)

    start = time.perf_counter()
    result = prune_model(
        model, stats, args.ratio, args.scope, args.compensate, args.min_keep, args.round_to
    )
    report["timings"]["prune_s"] = round(time.perf_counter() - start, 4)
    report["params"]["after"] = count_params(model)
    report["macs"]["after"] = count_macs(model, size)
    report["num_pruned"] = result.num_pruned
    report["original_sizes"] = result.original_sizes
    report["hidden_sizes"] = result.hidden_sizes
    if eval_loader is not None:
        top1, _, seconds = _top1(eval_loader, model, accelerator)
        report["accuracy"]["top1_after_pruning"] = top1
        report["timings"]["eval_after_s"] = round(seconds, 3)

    if accelerator.is_main_process:
        metadata = {
            "base_model": args.model, "ratio": args.ratio, "scope": args.scope,
            "round_to": args.round_to, "min_keep": args.min_keep,
            "compensate": args.compensate, "report": report,
        }  # fmt: skip
        _write_outputs(args, model, stats, result, report, metadata)
        print(_summary(report, args.output))
        if args.push_to_hub:
            from .hub import push_folder

            url = push_folder(args.output, args.push_to_hub, private=args.private)
            print(f"pushed to {args.push_to_hub}: {url}")
    accelerator.wait_for_everyone()
    return 0


def _write_outputs(args, model, stats, result, report, metadata) -> None:
    from .outputs import atomic_directory

    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        save_pretrained(model, tmp / "model", metadata=metadata)
        stats.save(tmp / "stats.safetensors")
        (tmp / "plan.json").write_text(json.dumps(result.plan.to_dict()))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))


def _summary(report: dict[str, Any], output: str) -> str:
    params, macs = report["params"], report["macs"]
    lines = [
        f"pruned {report['num_pruned']} MLP neurons ({report['scope']}, ratio {report['ratio']})",
        f"params {params['before'] / 1e6:.2f} M -> {params['after'] / 1e6:.2f} M, "
        f"MACs {macs['before'] / 1e9:.3f} G -> {macs['after'] / 1e9:.3f} G",
    ]
    if "accuracy" in report:
        acc = report["accuracy"]
        lines.append(
            f"top-1 on {acc['split']} ({acc['samples']} images): "
            f"{acc['top1_before']:.4f} -> {acc['top1_after_pruning']:.4f}"
        )
    lines.append(f"wrote {output}")
    return "\n".join(lines)


USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, UnsupportedModelError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vbprune`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"vbprune {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
