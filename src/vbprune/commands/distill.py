"""``vbprune distill``: recover a pruned model's accuracy by distilling its original.

The command reads top to bottom: load student and teacher, load data, train with
evaluation every epoch (best and last checkpoints kept, resumable), save the best model
with its card, optionally push.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, MissingInputError
from .arguments import non_negative_int, positive_float, positive_int

HELP = "recover accuracy by distilling the original"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune distill``."""
    p.add_argument("--model", required=True, help="pruned model folder (or a prune output)")
    p.add_argument("--teacher", help="teacher spec (default: the base model it records)")
    p.add_argument("--dataset", required=True, help="Hub id or ROOT/{train,val}/<class>/*")
    p.add_argument("--split", default="train")
    p.add_argument("--eval-split", default="validation")
    p.add_argument("--num-samples", type=positive_int, default=None, help="training images")
    p.add_argument("--eval-samples", type=positive_int, default=None, help="evaluation images")
    p.add_argument("--image-column", default="image")
    p.add_argument("--label-column", default="label")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=positive_float, default=10.0, help="paper: 10")
    p.add_argument("--learning-rate", type=float, default=1.5e-5, help="paper: 1.5e-5")
    p.add_argument("--weight-decay", type=float, default=0.01, help="paper: 0.01")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="per process; the paper's 32 is the total",
    )
    p.add_argument("--gradient-accumulation-steps", type=positive_int, default=1)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the KD term")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--num-workers", type=non_negative_int, default=4)
    p.add_argument("--bf16", action="store_true", help="train in bf16 mixed precision")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random-resized crop, flip and colour jitter on training images (timm's "
        "training transform); --no-augment: the evaluation transform",
    )
    p.add_argument("--resume", help="checkpoint folder to resume from, or 'last'")
    p.add_argument("--output", required=True, help="folder for checkpoints and the model")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the distilled model")
    p.add_argument("--private", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Train the pruned model against its teacher; write OUTPUT/model, report.json."""
    import json

    import torch

    from ..data import ImageCollator, image_transform, load_image_dataset, with_image_transform
    from ..io.checkpoint import from_pretrained, save_pretrained
    from ..io.folders import check_output_directory, model_folder
    from ..io.metadata import loaded_metadata
    from ..io.model_specs import load_model
    from ..io.weights import check_weights_fit
    from ..training.trainer import (
        DistillationTrainer,
        DistillationTrainingArguments,
        top1_metrics,
    )

    output = Path(args.output)
    if args.resume is None:
        check_output_directory(output, args.overwrite)
    folder = model_folder(args.model) or Path(args.model)  # a prune output or the model
    student = from_pretrained(folder)
    section = dict(loaded_metadata(student))
    teacher_spec = args.teacher or section.get("base_model")
    if not teacher_spec:
        raise ConfigError(f"{folder} records no base model: give --teacher")
    teacher = load_model(teacher_spec, pretrained=True)

    def load(split, count, seed):
        return load_image_dataset(
            args.dataset, split, image_column=args.image_column,
            label_column=args.label_column, num_samples=count, shuffle_seed=seed,
        )  # fmt: skip

    train, val = (
        load(args.split, args.num_samples, args.seed),
        load(args.eval_split, args.eval_samples, None),
    )
    training_args = DistillationTrainingArguments(
        output_dir=str(output / "checkpoints"), alpha=args.alpha, temperature=args.temperature,
        num_train_epochs=args.epochs, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="top1", greater_is_better=True,
        dataloader_num_workers=args.num_workers, bf16=args.bf16, seed=args.seed,
        report_to=[], logging_strategy="epoch", use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    if args.augment:  # evaluation keeps the deterministic transform of the collator
        train = with_image_transform(
            train, image_transform(student, training=True), args.image_column
        )
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=training_args, train_dataset=train,
        eval_dataset=val, data_collator=ImageCollator(
            image_transform(student), args.image_column, args.label_column),
        compute_metrics=top1_metrics,
    )  # fmt: skip
    resume = args.resume
    if resume == "last":
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(str(output / "checkpoints"))
        if resume is None:
            raise MissingInputError(f"no checkpoint to resume in {output / 'checkpoints'}")
    if resume is not None:  # refused before the Trainer half-loads another model's weights
        check_weights_fit(Path(resume), trainer.model)
    before = trainer.evaluate()["eval_top1"] if resume is None else None
    trainer.train(resume_from_checkpoint=resume)
    history = list(trainer.state.log_history)  # the per-epoch evaluations
    after = trainer.evaluate()["eval_top1"]  # the best model, loaded at the end
    report = _report(section, args, before, after, history)
    report["distillation"]["processes"] = trainer.accelerator.num_processes
    if trainer.accelerator.is_main_process:
        best = trainer.model.model if hasattr(trainer.model, "model") else trainer.model
        metadata = {**section, "report": report}
        save_pretrained(best, output / "model", metadata=metadata, overwrite=True)
        staged = output / ".report.json.tmp"
        staged.write_text(json.dumps(report, indent=2))
        staged.replace(output / "report.json")  # atomic: old report or new, never half
        print(f"top-1 on {args.eval_split}: {before} -> {after}; wrote {output / 'model'}")
        if args.push_to_hub:
            from ..io.hub import push_folder

            print(push_folder(output / "model", args.push_to_hub, private=args.private))
    trainer.accelerator.wait_for_everyone()
    return 0


def _report(section, args, before, after, history) -> dict[str, Any]:
    report = dict(section.get("report") or {})
    accuracy = dict(report.get("accuracy") or {})
    accuracy.setdefault("dataset", str(args.dataset))
    accuracy.setdefault("split", args.eval_split)
    accuracy["top1_after_distillation"] = after
    if before is not None:
        accuracy["top1_before_distillation"] = before
    report["accuracy"] = accuracy
    report["distillation"] = {
        "teacher": args.teacher or section.get("base_model"), "epochs": args.epochs,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "batch_size": args.batch_size, "alpha": args.alpha, "temperature": args.temperature,
        "augment": args.augment,
        "eval_top1_per_epoch": [h["eval_top1"] for h in history if "eval_top1" in h],
        "eval_samples_per_epoch": [h["eval_samples"] for h in history if "eval_samples" in h],
    }  # fmt: skip
    return report
