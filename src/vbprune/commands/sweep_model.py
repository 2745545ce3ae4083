"""``vbprune sweep --model M --dataset D``: a sweep of your own model on your own data.

One calibration (with the covariance if any point needs it, with heads if asked), then
every point (criterion × compensation × MAC budget or ratio) pruned from a fresh copy and
evaluated right after pruning on the evaluation split, with the latency of dense and
pruned measured in turns. Finished points are kept in ``OUTPUT.partial/`` as they come,
so a killed sweep resumes where it stopped; the outputs (``sweep.png``, ``sweep.csv``,
``sweep.md``, ``sweep.json``) appear together at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from ..core.config import PruningConfig
from ..core.errors import ConfigError, OutputExistsError
from .options import DataOptions, ModelOptions

LATENCY_REPEATS = 5


def points(args: argparse.Namespace) -> list[PruningConfig]:
    """Every point of the sweep, validated before any work."""
    criteria = args.criteria or [None]  # None: the config's own default
    compensations = args.compensations or ["mean"]
    if args.targets and args.ratios_given:
        raise ConfigError("give --targets (MAC budgets) or --ratios, not both")
    budgets = ([{"target_macs": t, "heads": args.heads} for t in args.targets] if args.targets
               else [{"ratio": r, "heads": args.heads} for r in args.ratios])  # fmt: skip
    return [PruningConfig(**budget, criterion=criterion, compensate=compensate)
            for criterion in criteria for compensate in compensations
            for budget in budgets]  # fmt: skip


def _point(config: PruningConfig) -> dict[str, Any]:
    """The options that name a point (the start of its row)."""
    return {"criterion": config.criterion, "compensate": config.compensate,
            "heads": config.heads, "target_macs": config.target_macs,
            "ratio": config.ratio}  # fmt: skip


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What must match for a partial sweep to be resumed."""
    keys = ("model", "pretrained", "dtype", "dataset", "split", "eval_split", "num_samples",
            "eval_samples", "seed", "latency_batch")  # fmt: skip
    return {key: str(getattr(args, key, None)) for key in keys}


def _partial(output: str, wanted: dict[str, Any], overwrite: bool) -> tuple[Path, list]:
    """The folder of finished points and the rows already there."""
    partial = Path(f"{output}.partial")
    if partial.is_dir():
        recorded = json.loads((partial / "settings.json").read_text())
        if recorded != wanted:
            if not overwrite:
                raise OutputExistsError(
                    f"{partial} holds a sweep with other settings; pass --overwrite to start again"
                )
            shutil.rmtree(partial)
    if Path(output).exists() and any(Path(output).iterdir()) and not overwrite:
        raise OutputExistsError(f"--output {output} is not empty (pass --overwrite)")
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "settings.json").write_text(json.dumps(wanted))
    rows_file = partial / "points.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if (
        rows_file.is_file()) else []  # fmt: skip
    return partial, rows


def run_model_sweep(args: argparse.Namespace) -> int:
    """Calibrate once, prune and evaluate every point, write the four outputs."""
    import copy

    from ..evaluation.counting import count_macs, count_params
    from ..evaluation.latency import device_name, measure_latencies, timing_batch
    from ..evaluation.model_sweep import (
        compare,
        dense_logits,
        mark_pareto,
        markdown,
        plot,
        point_key,
        to_csv,
    )  # fmt: skip
    from ..io.folders import atomic_directory
    from ..io.model_specs import record_spec
    from ..pruning import prune_model
    from .arguments import PROBE_IMAGES
    from .runtime import calibrate, image_loader, make_accelerator, prepare_model, probe_images

    configs = points(args)
    model_options, data = ModelOptions.from_args(args), DataOptions.from_args(args)
    accelerator = make_accelerator()
    partial, rows = _partial(args.output, settings(args), args.overwrite)
    done = {point_key(row) for row in rows}
    model = prepare_model(model_options, accelerator)
    covariance = any(config.needs_covariance for config in configs)
    stats, info = calibrate(data, model, accelerator, covariance, heads=args.heads,
                            model_spec=record_spec(model_options.model))  # fmt: skip
    evaluation = image_loader(data, model, accelerator, args.eval_split, args.eval_samples,
                              labels=True)  # fmt: skip
    reference = dense_logits(model, evaluation)
    dense = {**compare(model, evaluation, reference, accelerator),
             "macs": count_macs(model), "params": count_params(model)}  # fmt: skip
    images = probe_images(data, model, PROBE_IMAGES) if args.heads else None
    batch = timing_batch(model, args.latency_batch)
    for config in configs:
        row = _point(config)
        if point_key(row) in done:
            continue
        pruned = copy.deepcopy(model)
        result = prune_model(pruned, stats, config=config, images=images)
        row.update(compare(pruned, evaluation, reference, accelerator))
        times = measure_latencies({"dense": model, "pruned": pruned}, batch, LATENCY_REPEATS)
        row.update(macs=count_macs(pruned), params=count_params(pruned),
                   dense_ms=times["dense"] * 1e3, pruned_ms=times["pruned"] * 1e3,
                   speedup=times["dense"] / times["pruned"],
                   heads_kept=sum(result.heads.values()) if result.heads else None)  # fmt: skip
        rows.append(row)
        if accelerator.is_main_process:  # finished points survive a killed sweep
            with (partial / "points.jsonl").open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        del pruned
    dense["dense_ms"] = dense["pruned_ms"] = (
        sorted(r["dense_ms"] for r in rows)[len(rows) // 2] if rows else None)  # fmt: skip
    wanted = {point_key(_point(config)) for config in configs}
    rows = mark_pareto([row for row in rows if point_key(row) in wanted])  # asked for now
    if accelerator.is_main_process:
        report = {
            "dense": dense,
            "rows": rows,
            "calibration": info,
            "device": device_name(batch.device),
            "latency_batch": args.latency_batch,
        }
        with atomic_directory(args.output, overwrite=args.overwrite) as out:
            plot(rows, dense, out / "sweep.png")
            (out / "sweep.csv").write_text(to_csv(rows))
            (out / "sweep.md").write_text(markdown(rows, dense))
            (out / "sweep.json").write_text(json.dumps(report, indent=2))
        shutil.rmtree(partial, ignore_errors=True)
        print(markdown(rows, dense))
        print(f"wrote {args.output}")
    accelerator.wait_for_everyone()
    return 0
