"""``vbprune distill``: recover a pruned model's accuracy by distilling its original.

The command reads top to bottom: load student and teacher, load data, train with
evaluation every epoch (best and last checkpoints kept, resumable), save the best model
with its card, optionally push.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, MissingInputError
from .arguments import add_num_workers, add_skip_bad_images, positive_float, positive_int
from .options import DataOptions, OptionGroup, OutputOptions

HELP = "recover accuracy by distilling the original"
TRAINING_HELP = (
    "Every field of transformers' TrainingArguments is accepted as well, as the Trainer "
    "spells it (e.g. --max_steps 100, --lr_scheduler_type linear, --warmup_steps 500, "
    "--eval_steps 500 --eval_strategy steps, --deepspeed ds.json, --fsdp full_shard, "
    "--torch_compile); it overrides the option above that sets the same field. `vbprune "
    "distill --help-training` lists them all (loads transformers)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vbprune distill``; the Trainer's own pass through (TRAINING_HELP)."""
    p.epilog = TRAINING_HELP
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
    add_num_workers(p)
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
    p.add_argument("--help-training", action=_TrainingHelp,
                   help="list the TrainingArguments fields also accepted, and exit")  # fmt: skip


# the command line accepts the options it does not know: the Trainer's (cli.main)
EXTRA_ARGUMENTS = True


class _TrainingHelp(argparse.Action):
    """``--help-training``: transformers' own help of every TrainingArguments field."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        _training_parser(f"{parser.prog} [options above]").print_help()
        parser.exit()


@dataclass(frozen=True)
class DistillOptions(OptionGroup):
    """What to distil from what, and how the run continues.

    Attributes:
        model: The pruned model: a folder, or a ``vbprune prune`` output.
        teacher: The teacher's spec (``None``: the base model the pruned one records).
        eval_split: The split the best epoch is chosen on.
        eval_samples: Images of it to use (``None``: all).
        augment: timm's training augmentation on training images.
        resume: A checkpoint folder to resume from, or ``"last"``.
    """

    model: str
    teacher: str | None = None
    eval_split: str = "validation"
    eval_samples: int | None = None
    augment: bool = True
    resume: str | None = None


def run(args: argparse.Namespace) -> int:
    """Train the pruned model against its teacher; write OUTPUT/model, report.json."""
    out = OutputOptions.from_args(args)
    training = training_arguments(args, getattr(args, "extra", []), Path(out.output))
    return distill(DistillOptions.from_args(args), DataOptions.from_args(args), training, out)


def _training_parser(prog: str = "vbprune distill"):
    from transformers import HfArgumentParser

    from ..training.trainer import DistillationTrainingArguments

    return HfArgumentParser(DistillationTrainingArguments, prog=prog)


def training_arguments(args: argparse.Namespace, extra: list[str], output: Path) -> Any:
    """The run's ``DistillationTrainingArguments``: the paper's recipe and vbprune's
    options, then every TrainingArguments field given in ``extra`` on top.

    The device is accelerate's choice (CUDA, MPS, XPU, or the CPU).

    Raises:
        ConfigError: for an option neither vbprune nor the Trainer knows, a field vbprune
            sets itself (``--output_dir``: use ``--output``), or a combination the Trainer
            refuses (``--eval_strategy no`` with the best epoch kept, ...).
    """
    import sys

    from ..training.trainer import DistillationTrainingArguments

    ours = dict(
        output_dir=str(output / "checkpoints"), alpha=args.alpha, temperature=args.temperature,
        num_train_epochs=args.epochs, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="top1", greater_is_better=True,
        dataloader_num_workers=args.num_workers, bf16=args.bf16, seed=args.seed,
        report_to=[], logging_strategy="epoch",
        disable_tqdm=args.quiet or not sys.stderr.isatty(),  # bars on a terminal only
    )  # fmt: skip
    given = _given_training_fields(extra)
    if "output_dir" in given:
        raise ConfigError("--output_dir is where vbprune keeps checkpoints: use --output")
    try:
        return DistillationTrainingArguments(**{**ours, **given})
    except ValueError as error:  # transformers' own checks of the combination
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"training arguments: {' '.join(str(error).split())}") from None


def _given_training_fields(extra: list[str]) -> dict[str, Any]:
    """The TrainingArguments fields ``extra`` sets, parsed (typed) by transformers'
    ``HfArgumentParser``; fields it does not name are left out, not defaulted."""
    if not extra:
        return {}
    parser = _training_parser()
    for action in parser._actions:  # only what was given: no defaults, nothing required
        action.default, action.required = argparse.SUPPRESS, False
    given, unknown = parser.parse_known_args(extra)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {' '.join(unknown)}: `vbprune distill --help` lists vbprune's "
            "options, `vbprune distill --help-training` the Trainer's"
        )
    return vars(given)


def distill(options: DistillOptions, data: DataOptions, training: Any, out: OutputOptions) -> int:
    """Load student and teacher, load the data, train (evaluating every epoch), save the
    best model with its card and the report, push.

    A failed run leaves what ``--resume last`` can use (complete checkpoints) and nothing
    that blocks a rerun (no incomplete checkpoint, no empty folder it made)."""
    from ..data import load_image_dataset
    from ..io.checkpoint import from_pretrained
    from ..io.folders import model_folder, remove_stale_temporaries
    from ..io.metadata import loaded_metadata
    from ..io.model_specs import load_model
    from .runtime import label_mapping

    output = Path(out.output)
    run_dir = output / "checkpoints"
    created = not output.exists()
    if options.resume is None:
        _check_fresh_output(output, run_dir, out.overwrite, [options.model, data.dataset])
    remove_stale_temporaries(output)  # of a run killed while it saved the model
    folder = model_folder(options.model) or Path(options.model)  # a prune output or the model
    student = from_pretrained(folder)
    section = dict(loaded_metadata(student))
    teacher_spec, teacher_seed = _teacher(options.teacher, section, folder)
    # a base model pruned with --no-pretrained is rebuilt with the same random weights
    teacher = load_model(teacher_spec, pretrained=teacher_seed is None, seed=teacher_seed or 0)
    resume = _resume_from(options.resume, run_dir)  # checked before any data is read

    def load(split, count, seed):
        return load_image_dataset(
            data.dataset, split, image_column=data.image_column,
            label_column=data.label_column, num_samples=count, shuffle_seed=seed,
        )  # fmt: skip

    train = load(data.split, data.num_samples, data.seed)
    val = load(options.eval_split, options.eval_samples, None)
    mappings = [
        label_mapping(dataset, data.label_column, student, f"{data.dataset} ({split})",
                      str(data.dataset))
        for dataset, split in ((train, data.split), (val, options.eval_split))
    ]  # fmt: skip
    if mappings[0] != mappings[1]:  # one collator serves both splits
        from ..core.errors import DatasetError

        raise DatasetError(f"the classes of {data.dataset}'s {data.split} and "
                           f"{options.eval_split} splits are numbered differently")  # fmt: skip

    try:
        return _train_and_save(options, data, training, out, student, teacher, train, val,
                               resume, section, (teacher_spec, teacher_seed),
                               mappings[0])  # fmt: skip
    except BaseException as error:
        _clean_failed_run(output, run_dir, created)
        from ..io.folders import full_disk_error

        full = full_disk_error(  # a checkpoint, the model or the report
            error, output, after="checkpoints that were complete are kept (--resume last)"
        )  # fmt: skip
        if full is not None:
            raise full from error
        raise


def _train_and_save(options, data, training, out, student, teacher, train, val, resume,
                    section, teacher_info, label_map=None):  # fmt: skip
    """Train (resuming from ``resume``), then write the best model and the report."""
    import json
    import shutil

    from ..data import ImageCollator, image_transform, with_image_transform
    from ..data.sources import undecoded
    from ..io.checkpoint import save_pretrained
    from ..io.weights import checkpoint_state_dict
    from ..training.checkpoints import remove_incomplete
    from ..training.progress import readable_output
    from ..training.trainer import DistillationTrainer, top1_metrics
    from .runtime import skipped_report

    output = Path(out.output)
    run_dir = output / "checkpoints"
    # images decoded by the collator (or the training transform): named or skipped
    train, val = (undecoded(d, data.image_column) for d in (train, val))
    if options.augment:  # evaluation keeps the deterministic transform of the collator
        train = with_image_transform(
            train, image_transform(student, training=True), data.image_column,
            skip_bad_images=data.skip_bad_images,
        )  # fmt: skip
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=training, train_dataset=train,
        eval_dataset=val, data_collator=ImageCollator(
            image_transform(student), data.image_column, data.label_column,
            skip_bad_images=data.skip_bad_images, keep_slots=True, label_map=label_map),
        compute_metrics=top1_metrics,
    )  # fmt: skip
    # bars where the Trainer shows them, a line per evaluation unless --quiet
    readable_output(trainer, bars=not training.disable_tqdm, lines=not out.quiet)
    if resume is not None:  # another model's weights: refused before any training
        checkpoint_state_dict(resume, trainer.model)
        remove_incomplete(run_dir)  # the run stopped while saving them: never resumed
    elif out.overwrite:  # an earlier run's checkpoints must not mix with this run's
        shutil.rmtree(run_dir, ignore_errors=True)
    before = trainer.evaluate()["eval_top1"] if resume is None else None
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    history = list(trainer.state.log_history)  # the per-epoch evaluations
    after = trainer.evaluate()["eval_top1"]  # the best model, loaded at the end
    report = _report(section, options, data, training, before, after, history, teacher_info)
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
        print(f"top-1 on {options.eval_split}: {_percent(before)} -> {_percent(after)}; "
              f"wrote {output / 'model'}")  # fmt: skip
        if out.push_to_hub:
            from ..io.hub import push_folder

            print(push_folder(output / "model", out.push_to_hub, private=out.private))
    trainer.accelerator.wait_for_everyone()
    return 0


def _percent(top1: float | None) -> str:
    return "-" if top1 is None else f"{100 * top1:.2f} %"


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


def _teacher(teacher: str | None, section: dict, folder: Path) -> tuple[str, int | None]:
    """The teacher's spec, and the seed of its random weights when the base model was
    pruned with --no-pretrained (``None``: load its trained weights)."""
    from ..io.model_specs import record_spec

    if teacher:
        return record_spec(teacher), None
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


def _report(section, options, data, training, before, after, history, teacher_info):
    """The pruning report with the distillation's; every top-1 says its dataset and split
    (the pruning's numbers stay in ``accuracy`` only when they are on the same ones)."""
    report = dict(section.get("report") or {})
    dataset, split = str(data.dataset), options.eval_split
    accuracy = dict(report.get("accuracy") or {})
    if (accuracy.get("dataset", dataset), accuracy.get("split", split)) != (dataset, split):
        report["accuracy_at_pruning"] = accuracy  # measured elsewhere: not compared
        accuracy = {}
    accuracy.update(dataset=dataset, split=split, top1_after_distillation=after)
    if before is not None:
        accuracy["top1_before_distillation"] = before
    report["accuracy"] = accuracy
    teacher, teacher_seed = teacher_info
    report["distillation"] = {  # as trained: the Trainer's own fields where given
        "teacher": teacher, "epochs": training.num_train_epochs,
        "max_steps": training.max_steps if training.max_steps > 0 else None,
        "learning_rate": training.learning_rate, "weight_decay": training.weight_decay,
        "batch_size": training.per_device_train_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "alpha": training.alpha, "temperature": training.temperature,
        "augment": options.augment, "eval_dataset": dataset, "eval_split": split,
        "eval_top1_per_epoch": [h["eval_top1"] for h in history if "eval_top1" in h],
        "eval_samples_per_epoch": [h["eval_samples"] for h in history if "eval_samples" in h],
    }  # fmt: skip
    if teacher_seed is not None:  # rebuilt with the random weights it was pruned with
        report["distillation"]["teacher_seed"] = teacher_seed
    return report
