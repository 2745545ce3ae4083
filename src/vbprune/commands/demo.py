"""``vbprune demo``: the whole method on a real trained network, nothing downloaded.

A tiny ViT trained on scikit-learn's bundled digits (trained on first use, cached) is
calibrated, pruned, compared with random selection and with pruning without the fold,
distilled briefly, evaluated and saved with its model card, all in one output folder.
"""

from __future__ import annotations

import argparse

from ..core.config import PruningConfig
from .arguments import positive_int

HELP = "prune and recover a ViT trained on digits (no download)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune demo``."""
    p.add_argument("--output", default="vbprune-demo", help="folder for everything it writes")
    p.add_argument("--ratio", type=float, default=0.8, help="fraction of MLP neurons removed")
    p.add_argument("--num-samples", type=positive_int, default=None, help="calibration images")
    p.add_argument("--epochs", type=positive_int, default=2, help="distillation epochs")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print a before/after table."""
    import copy
    import dataclasses
    import json
    import tempfile
    import time

    from .._digits import TensorImageDataset, accuracy, load_digits_tensors, trained_digits_vit
    from ..architectures.interface import input_size
    from ..calibration import VarianceCalibrator
    from ..evaluation.counting import count_macs, count_params
    from ..io.checkpoint import save_pretrained
    from ..io.folders import atomic_directory
    from ..pruning import prune_model
    from ..training.trainer import DistillationTrainer, DistillationTrainingArguments

    config = PruningConfig(ratio=args.ratio)  # validated before anything is trained
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = load_digits_tensors()
    with atomic_directory(args.output, overwrite=args.overwrite) as out:
        original = trained_digits_vit(train_x, train_y)
        calibration = train_x[: args.num_samples] if args.num_samples else train_x
        stats = VarianceCalibrator(original).run(calibration.split(256))
        stats.save(out / "stats.safetensors")
        size = input_size(original)
        models = {"original": original}
        for name, criterion, fold in (("variance (VBP)", "variance", True),
                                      ("variance, no mean fold", "variance", False),
                                      ("random selection", "random", True)):  # fmt: skip
            models[name] = copy.deepcopy(original)
            setting = dataclasses.replace(config, criterion=criterion, compensate=fold)
            prune_model(models[name], stats, config=setting)
        # right after pruning, before the VBP model is distilled in place below
        accuracies = {name: accuracy(m, test_x, test_y) for name, m in models.items()}
        student = models["variance (VBP)"]
        right_after = accuracies["variance (VBP)"]
        with tempfile.TemporaryDirectory() as scratch:  # the Trainer's output_dir: nothing kept
            DistillationTrainer(
                model=student, teacher_model=original,
                train_dataset=TensorImageDataset(train_x, train_y),
                args=DistillationTrainingArguments(
                    scratch, num_train_epochs=args.epochs, learning_rate=1e-3,
                    per_device_train_batch_size=64, use_cpu=True, report_to=[],
                    save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                ),
            ).train()  # fmt: skip
        accuracies["VBP + distillation"] = accuracy(student, test_x, test_y)
        report = {
            "pruning": config.to_dict(),
            "test_images": len(test_y),
            "accuracy": {
                "dataset": "scikit-learn digits", "split": "test",
                "top1_before": accuracies["original"],
                "top1_after_pruning": right_after,
                "top1_after_distillation": accuracies["VBP + distillation"],
                "top1_random_selection": accuracies["random selection"],
                "top1_without_fold": accuracies["variance, no mean fold"],
            },
            "params": {"before": count_params(original), "after": count_params(student)},
            "macs": {"before": count_macs(original, size), "after": count_macs(student, size)},
            "input_size": list(size),
            "seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        save_pretrained(
            student,
            out / "model",
            metadata={
                "base_model": "vbprune digits ViT",
                "pruning": config.to_dict(),
                "report": report,
            },
        )
        (out / "report.json").write_text(json.dumps(report, indent=2))
        table = _table(report, accuracies)
        (out / "summary.md").write_text(table)
    print(table)
    print(f"wrote {args.output}")
    return 0


def _table(report, accuracies) -> str:
    params, macs = report["params"], report["macs"]
    lines = [
        f"VBP on a digits ViT: {100 * report['pruning']['ratio']:g} % of MLP neurons removed "
        f"({report['test_images']} test images)",
        "",
        "| model | top-1 |",
        "|---|---|",
        *(f"| {name} | {100 * value:.1f} % |" for name, value in accuracies.items()),
        "",
        f"params {params['before'] / 1e3:.1f} k -> {params['after'] / 1e3:.1f} k, "
        f"MACs {macs['before'] / 1e6:.2f} M -> {macs['after'] / 1e6:.2f} M",
    ]
    return "\n".join(lines) + "\n"
