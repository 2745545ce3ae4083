"""``vbprune demo``: the whole method on a real trained network, nothing downloaded.

A tiny ViT trained on scikit-learn's bundled digits (trained on first use, cached) is
calibrated, pruned with VBP's mean fold and, side by side, with least-squares
compensation, compared with pruning without compensation and with random selection
(and with pruning attention heads too, to the same MACs), distilled briefly, evaluated
and saved with its model card, all in one output folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.compensation import COMPENSATIONS
from ..core.config import PruningConfig
from ..core.criteria import CRITERIA
from .arguments import PROBE_IMAGES, positive_int

if TYPE_CHECKING:  # the parser is built without torch
    from torch import Tensor, nn

    from ..core.statistics import ActivationStats

HELP = "prune and recover a ViT trained on digits (no download)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune demo``."""
    p.add_argument("--output", default="vbprune-demo", help="folder for everything it writes")
    p.add_argument("--ratio", type=float, default=0.8, help="fraction of MLP neurons removed")
    p.add_argument("--num-samples", type=positive_int, default=None, help="calibration images")
    p.add_argument("--epochs", type=positive_int, default=2, help="distillation epochs")
    p.add_argument("--criterion", choices=list(CRITERIA), default="variance",
                   help="the criterion of the saved model")  # fmt: skip
    p.add_argument(
        "--compensate",
        choices=list(COMPENSATIONS),
        default="mean",
        help="the compensation of the saved model (mean: VBP, the paper)",
    )
    p.add_argument(
        "--heads",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add a row pruning attention heads with the MLP neurons, to the MACs of the "
        "saved model (least squares; the weight of heads chosen on calibration images)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")


def variants(config: PruningConfig) -> list[PruningConfig]:
    """The rows of the demo's table, from the registries: the variance criterion with
    every compensation, every other criterion with the compensation it is made for (else
    the mean fold), and ``config`` itself."""
    import dataclasses

    rows = [dataclasses.replace(config, criterion="variance", compensate=name)
            for name in COMPENSATIONS]  # fmt: skip
    for name, entry in CRITERIA.items():
        if name != "variance":
            compensate = entry.compensation or "mean"
            rows.append(dataclasses.replace(config, criterion=name, compensate=compensate))
    return list(dict.fromkeys([*rows, config]))  # configs are frozen: hashable


def label(config: PruningConfig) -> str:
    """``variance, mean fold (VBP)``: a row's name (``heads + MLP, fluctuation, least
    squares (same MACs)`` for attention heads pruned too)."""
    name = f"{CRITERIA[config.criterion].label}, {COMPENSATIONS[config.compensate].label}"
    if config.heads:
        return f"heads + MLP, {name} (same MACs)"
    return name + (
        " (VBP)" if (config.criterion, config.compensate) == ("variance", "mean") else ""
    )


def heads_variant(
    model: nn.Module, original: nn.Module, stats: ActivationStats, images: Tensor
) -> tuple[PruningConfig, dict[str, Any]]:
    """A copy of ``original`` with attention heads and MLP neurons pruned together (least
    squares, the config's default criterion) to the share of MACs ``model`` kept, the
    weight of heads chosen on ``images``: its config, and the facts the report records
    (with the pruned copy under ``"model"``)."""
    import copy

    from ..evaluation.counting import count_macs
    from ..pruning import prune_model

    dense = count_macs(original)
    config = PruningConfig(target_macs=round(count_macs(model) / dense, 4), heads=True,
                           compensate="ls")  # fmt: skip
    pruned = copy.deepcopy(original)
    result = prune_model(pruned, stats, config=config, images=images)
    facts = {
        "model": pruned, "heads": True, "target_macs": config.target_macs,
        "macs": count_macs(pruned), "heads_kept": sum(result.heads.values()),
        "heads_total": sum(result.original_heads.values()),
        "head_weight": result.budget.get("head_weight"),
    }  # fmt: skip
    return config, facts


def run(args: argparse.Namespace) -> int:
    """Run the demo and print a before/after table."""
    import copy
    import json
    import time

    from .._digits import accuracy, load_digits_tensors, trained_digits_vit
    from ..architectures import mlp_widths
    from ..calibration import VarianceCalibrator
    from ..evaluation.counting import count_macs, count_params
    from ..io.checkpoint import save_pretrained
    from ..io.folders import atomic_directory
    from ..pruning import prune_model

    # validated before anything is trained
    config = PruningConfig(ratio=args.ratio, criterion=args.criterion, compensate=args.compensate)
    paper = PruningConfig(ratio=args.ratio)  # VBP: variance, mean fold
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = load_digits_tensors()
    with atomic_directory(args.output, overwrite=args.overwrite) as out:
        original = trained_digits_vit(train_x, train_y)
        calibration = train_x[: args.num_samples] if args.num_samples else train_x
        # with the covariance for least squares: 4 MLPs of 256 neurons, 2 MB
        calibrator = VarianceCalibrator(original, covariance=True, heads=args.heads)
        stats = calibrator.run(calibration.split(256))
        stats.save(out / "stats.safetensors")
        models, pruned, extra = {}, {}, {}
        for setting in variants(config):
            models[setting] = copy.deepcopy(original)
            prune_model(models[setting], stats, config=setting)
            pruned[setting] = accuracy(models[setting], test_x, test_y)
        if args.heads:  # the same MACs as the saved model, heads pruned too
            setting, extra_facts = heads_variant(models[config], original, stats,
                                                 calibration[:PROBE_IMAGES])  # fmt: skip
            models[setting] = extra_facts.pop("model")
            pruned[setting], extra[setting] = accuracy(models[setting], test_x, test_y), extra_facts
        best = max(pruned, key=pruned.get)  # distilled too: the best right after pruning
        distilled = {}
        for setting in dict.fromkeys([paper, config, best]):
            _distill(models[setting], original, train_x, train_y, args.epochs)
            distilled[setting] = accuracy(models[setting], test_x, test_y)
        student = models[config]
        before = accuracy(original, test_x, test_y)
        report = {
            "pruning": config.to_dict(),
            "test_images": len(test_y),
            "accuracy": {
                "dataset": "scikit-learn digits", "split": "test",
                "top1_before": before,
                "top1_after_pruning": pruned[config],
                "top1_after_distillation": distilled[config],
                "variants": [
                    {"label": label(s), "criterion": s.criterion, "compensate": s.compensate,
                     "top1_after_pruning": top1, **extra.get(s, {}),
                     **({"top1_after_distillation": distilled[s]} if s in distilled else {})}
                    for s, top1 in pruned.items()
                ],
            },
            # the card's widths before -> after: every number on it is real
            "original_widths": mlp_widths(original), "widths": mlp_widths(student),
            "params": {"before": count_params(original), "after": count_params(student)},
            "macs": {"before": count_macs(original), "after": count_macs(student)},
            "seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        save_pretrained(
            student,
            out / "model",
            location=Path(args.output) / "model",
            metadata={
                "base_model": "vbprune digits ViT",
                "pruning": config.to_dict(),
                "report": report,
            },
        )
        (out / "report.json").write_text(json.dumps(report, indent=2))
        table = _table(report, config, before, pruned, distilled, extra)
        (out / "summary.md").write_text(table)
    print(table)
    print(f"wrote {args.output}")
    return 0


def _distill(student, teacher, train_x, train_y, epochs: int) -> None:
    """A short distillation from the original model, in place (nothing written); on the
    device accelerate picks."""
    import tempfile

    from .._digits import TensorImageDataset
    from ..training.progress import readable_output
    from ..training.trainer import DistillationTrainer, DistillationTrainingArguments

    with tempfile.TemporaryDirectory() as scratch:  # the Trainer's output_dir: nothing kept
        trainer = DistillationTrainer(
            model=student, teacher_model=teacher,
            train_dataset=TensorImageDataset(train_x, train_y),
            args=DistillationTrainingArguments(
                scratch, num_train_epochs=epochs, learning_rate=1e-3,
                per_device_train_batch_size=64, report_to=[],
                save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
            ),
        )  # fmt: skip
        readable_output(trainer, bars=False, lines=False).train()  # the table says it all


def _table(
    report, saved: PruningConfig, before: float, pruned: dict, distilled: dict, extra: dict
) -> str:
    import textwrap

    params, macs = report["params"], report["macs"]
    percent = lambda top1: f"{100 * top1:.1f} %"  # noqa: E731

    def name(setting: PruningConfig) -> str:
        facts = extra.get(setting)
        if facts is None:
            return label(setting)
        return (label(setting)[: -len(")")] + f"; {facts['heads_kept']} of "
                f"{facts['heads_total']} heads kept)")  # fmt: skip

    rows = [(name(s), percent(top1), percent(distilled[s]) if s in distilled else "")
            for s, top1 in pruned.items()]  # fmt: skip
    lines = [
        f"VBP on a digits ViT: {100 * report['pruning']['ratio']:g} % of MLP neurons removed "
        f"({report['test_images']} test images)",
        "",
        "| model | top-1 right after pruning | after distillation |",
        "|---|---|---|",
        f"| original | {percent(before)} | |",
        *(f"| {name} | {after_pruning} | {after} |" for name, after_pruning, after in rows),
        "",
        f"params {params['before'] / 1e3:.1f} k -> {params['after'] / 1e3:.1f} k, "
        f"MACs {macs['before'] / 1e6:.2f} M -> {macs['after'] / 1e6:.2f} M "
        f"(saved: {label(saved)})",
    ]
    by_method = {(s.criterion, s.compensate): top1 for s, top1 in pruned.items() if not s.heads}
    fold, no_fold = by_method.get(("variance", "mean")), by_method.get(("variance", "none"))
    if fold is not None and no_fold is not None and no_fold > fold:
        note = (
            "Here no compensation at all beats VBP's mean fold. The removed neurons still "
            "carry a signal that differs from token to token; the fold replaces it by one "
            "vector shared by every token, and the LayerNorms of the following blocks "
            "amplify that shift. Least squares predicts the removed signal from the kept "
            "neurons instead (docs/method.md)."
        )
        lines += ["", textwrap.fill(note, 88)]
    return "\n".join(lines) + "\n"
