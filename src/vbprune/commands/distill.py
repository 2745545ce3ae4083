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
from .arguments import (
    add_skip_bad_images,
    default_workers,
    non_negative_int,
    positive_float,
    positive_int,
)

HELP = "recover accuracy by distilling the original"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune distill``."""
    p.add_argument("--model", required=True, help="pruned model folder (or a prune output)")
    p.add_argument("--teacher", help="teacher spec (default: the base model it records)")
    p.add_argument("--dataset", required=True, help="Hub id or ROOT/{train,val}/<class>/*")
    p.add_argument("--split", default="train", help="split to train on")
    p.add_argument("--eval-split", default="validation", help="split to choose the best epoch on")
    p.add_argument("--num-samples", type=positive_int, default=None, help="training images")
    p.add_argument("--eval-samples", type=positive_int, default=None, help="evaluation images")
    p.add_argument("--image-column", default="image", help="dataset column of the images")
    p.add_argument("--label-column", default="label", help="dataset column of the labels")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, shuffling and training")
    p.add_argument("--epochs", type=positive_float, default=10.0, help="paper: 10")
    p.add_argument("--learning-rate", type=float, default=1.5e-5, help="paper: 1.5e-5")
    p.add_argument("--weight-decay", type=float, default=0.01, help="paper: 0.01")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="per process; the paper's 32 is the total",
    )
    p.add_argument("--gradient-accumulation-steps", type=positive_int, default=1,
                   help="batches per optimizer step")  # fmt: skip
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the KD term")
    p.add_argument("--temperature", type=float, default=2.0, help="softening of the KD term")
    p.add_argument("--num-workers", type=non_negative_int, default=default_workers(),
                   help="loader worker processes (at most the CPUs available, 4)")  # fmt: skip
    add_skip_bad_images(p)
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
    p.add_argument("--private", action="store_true", help="create the Hub repo private")


def run(args: argparse.Namespace) -> int:
    """Train the pruned model against its teacher; write OUTPUT/model, report.json.

    A failed run leaves what ``--resume last`` can use (complete checkpoints) and nothing
    that blocks a rerun (no incomplete checkpoint, no empty folder it made)."""
    from ..data import load_image_dataset
    from ..io.checkpoint import from_pretrained
    from ..io.folders import model_folder, remove_stale_temporaries
    from ..io.metadata import loaded_metadata
    from ..io.model_specs import load_model
    from .runtime import check_label_count

    output = Path(args.output)
    run_dir = output / "checkpoints"
    created = not output.exists()
    if args.resume is None:
        _check_fresh_output(output, run_dir, args.overwrite, [args.model, args.dataset])
    remove_stale_temporaries(output)  # of a run killed while it saved the model
    folder = model_folder(args.model) or Path(args.model)  # a prune output or the model
    student = from_pretrained(folder)
    section = dict(loaded_metadata(student))
    teacher_spec, teacher_seed = _teacher(args, section, folder)
    # a base model pruned with --no-pretrained is rebuilt with the same random weights
    teacher = load_model(teacher_spec, pretrained=teacher_seed is None, seed=teacher_seed or 0)
    resume = _resume_from(args.resume, run_dir)  # checked before any data is read

    def load(split, count, seed):
        return load_image_dataset(
            args.dataset, split, image_column=args.image_column,
            label_column=args.label_column, num_samples=count, shuffle_seed=seed,
        )  # fmt: skip

    train, val = (
        load(args.split, args.num_samples, args.seed),
        load(args.eval_split, args.eval_samples, None),
    )
    for dataset, split in ((train, args.split), (val, args.eval_split)):
        check_label_count(dataset, args.label_column, student, f"{args.dataset} ({split})")
    try:
        return _train_and_save(args, output, student, teacher, train, val, resume, section,
                               (teacher_spec, teacher_seed))  # fmt: skip
    except BaseException:
        _clean_failed_run(output, run_dir, created)
        raise


def _train_and_save(args, output, student, teacher, train, val, resume, section, teacher_info):
    """Train (resuming from ``resume``), then write the best model and the report."""
    import json
    import shutil

    import torch

    from ..data import ImageCollator, image_transform, with_image_transform
    from ..data.sources import undecoded
    from ..io.checkpoint import save_pretrained
    from ..io.weights import checkpoint_state_dict
    from ..training.checkpoints import remove_incomplete
    from ..training.trainer import (
        DistillationTrainer,
        DistillationTrainingArguments,
        top1_metrics,
    )
    from .runtime import skipped_report

    run_dir = output / "checkpoints"
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
    # images decoded by the collator (or the training transform): named or skipped
    train, val = (undecoded(d, args.image_column) for d in (train, val))
    if args.augment:  # evaluation keeps the deterministic transform of the collator
        train = with_image_transform(
            train, image_transform(student, training=True), args.image_column,
            skip_bad_images=args.skip_bad_images,
        )  # fmt: skip
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=training_args, train_dataset=train,
        eval_dataset=val, data_collator=ImageCollator(
            image_transform(student), args.image_column, args.label_column,
            skip_bad_images=args.skip_bad_images, keep_slots=True),
        compute_metrics=top1_metrics,
    )  # fmt: skip
    if resume is not None:  # another model's weights: refused before any training
        checkpoint_state_dict(resume, trainer.model)
        remove_incomplete(run_dir)  # the run stopped while saving them: never resumed
    elif args.overwrite:  # an earlier run's checkpoints must not mix with this run's
        shutil.rmtree(run_dir, ignore_errors=True)
    before = trainer.evaluate()["eval_top1"] if resume is None else None
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    history = list(trainer.state.log_history)  # the per-epoch evaluations
    after = trainer.evaluate()["eval_top1"]  # the best model, loaded at the end
    report = _report(section, args, before, after, history, teacher_info)
    skipped = skipped_report(sorted(trainer.skipped_images), trainer.accelerator)
    if skipped:  # --skip-bad-images
        report["distillation"]["skipped_images"] = skipped
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


def _check_fresh_output(output: Path, run_dir: Path, overwrite: bool, inputs: list) -> None:
    """A new run's output: empty, or ``--overwrite``; say so when it could be resumed."""
    from ..core.errors import OutputExistsError
    from ..io.folders import check_output_directory
    from ..training.checkpoints import last_complete_checkpoint

    try:
        check_output_directory(output, overwrite, inputs, in_place=True)
    except OutputExistsError as error:
        if last_complete_checkpoint(run_dir) is None:
            raise
        raise OutputExistsError(f"{error}, or --resume last to continue its run") from None


def _teacher(args: argparse.Namespace, section: dict, folder: Path) -> tuple[str, int | None]:
    """The teacher's spec, and the seed of its random weights when the base model was
    pruned with --no-pretrained (``None``: load its trained weights)."""
    from ..io.model_specs import record_spec

    if args.teacher:
        return record_spec(args.teacher), None
    spec = section.get("base_model")
    if not spec:
        raise ConfigError(f"{folder} records no base model: give --teacher")
    return spec, section.get("base_model_seed")


def _resume_from(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint ``--resume`` names: ``last`` is the newest complete one."""
    from ..training.checkpoints import check_complete, last_complete_checkpoint

    if resume is None:
        return None
    if resume == "last":
        found = last_complete_checkpoint(run_dir)
        if found is None:
            raise MissingInputError(f"no complete checkpoint to resume in {run_dir}")
        return found
    path = Path(resume)
    if not path.is_dir():
        raise MissingInputError(f"--resume {resume}: no such checkpoint folder")
    check_complete(path)
    return path


def _clean_failed_run(output: Path, run_dir: Path, created: bool) -> None:
    """After a failure: drop what a rerun could not use (incomplete checkpoints, an empty
    checkpoints folder, the output folder if this run made it and left it empty); keep
    complete checkpoints, which ``--resume last`` continues from."""
    import os

    from ..training.checkpoints import remove_incomplete

    if int(os.environ.get("RANK", "0")) != 0:  # the main process saves: it alone cleans
        return
    remove_incomplete(run_dir)
    for folder in (run_dir, output) if created else (run_dir,):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _report(section, args, before, after, history, teacher_info) -> dict[str, Any]:
    """The pruning report with the distillation's; every top-1 says its dataset and split
    (the pruning's numbers stay in ``accuracy`` only when they are on the same ones)."""
    report = dict(section.get("report") or {})
    dataset, split = str(args.dataset), args.eval_split
    accuracy = dict(report.get("accuracy") or {})
    if (accuracy.get("dataset", dataset), accuracy.get("split", split)) != (dataset, split):
        report["accuracy_at_pruning"] = accuracy  # measured elsewhere: not compared
        accuracy = {}
    accuracy.update(dataset=dataset, split=split, top1_after_distillation=after)
    if before is not None:
        accuracy["top1_before_distillation"] = before
    report["accuracy"] = accuracy
    teacher, teacher_seed = teacher_info
    report["distillation"] = {
        "teacher": teacher, "epochs": args.epochs,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "batch_size": args.batch_size, "alpha": args.alpha, "temperature": args.temperature,
        "augment": args.augment, "eval_dataset": dataset, "eval_split": split,
        "eval_top1_per_epoch": [h["eval_top1"] for h in history if "eval_top1" in h],
        "eval_samples_per_epoch": [h["eval_samples"] for h in history if "eval_samples" in h],
    }  # fmt: skip
    if teacher_seed is not None:  # rebuilt with the random weights it was pruned with
        report["distillation"]["teacher_seed"] = teacher_seed
    return report
