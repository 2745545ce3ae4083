"""What a training run prints: bars on a terminal, one line per evaluation, never the
Trainer's raw log dictionaries (``{'loss': '0.41', 'grad_norm': ...}``)."""

from __future__ import annotations

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback


class _Bars(ProgressCallback):
    """transformers' progress bars without the log dictionaries it writes under them."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


class EvaluationLines(TrainerCallback):
    """After every evaluation during training, one line on the main process:
    ``epoch 2/10: top-1 83.33 % on 120 images, loss 0.4123`` (or ``step 500/2000
    (epoch 0.25): ...`` when evaluating by steps)."""

    def __init__(self):
        self.training = False  # evaluations before and after train() are the caller's

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not (self.training and state.is_world_process_zero and metrics):
            return
        epoch = state.epoch or 0.0
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "epoch":
            where = f"epoch {epoch:.0f}/{state.num_train_epochs:g}"
        else:
            where = f"step {state.global_step}/{state.max_steps} (epoch {epoch:.2f})"
        parts = []
        if "eval_top1" in metrics:
            count = metrics.get("eval_samples")
            parts.append(f"top-1 {100 * metrics['eval_top1']:.2f} %"
                         + (f" on {count:g} images" if count is not None else ""))  # fmt: skip
        if "eval_loss" in metrics:
            parts.append(f"loss {metrics['eval_loss']:.4f}")
        print(f"{where}: {', '.join(parts) or metrics}", flush=True)


def readable_output(trainer: Trainer, bars: bool, lines: bool = True) -> Trainer:
    """Replace the Trainer's printing: ``bars`` (its tqdm bars, without log dictionaries)
    and ``lines`` (:class:`EvaluationLines`); neither prints the raw logs."""
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    if bars:
        trainer.add_callback(_Bars)
    if lines:
        trainer.add_callback(EvaluationLines)
    return trainer
