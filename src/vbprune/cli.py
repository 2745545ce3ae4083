"""``vbprune`` command line: a small dispatcher over :mod:`vbprune.commands`.

Every command runs as one process or under ``accelerate launch`` / ``torchrun`` (each
process reads its own shard; statistics and accuracy are merged exactly). Only the main
process writes, and an output folder appears complete or not at all.

Building the parser imports only the commands' argument definitions, so ``vbprune
--help`` and ``vbprune <command> --help`` answer without loading torch, transformers,
timm, accelerate, datasets or evaluate; a command's ``run`` imports what its work needs.
"""

from __future__ import annotations

import argparse
import sys

from ._version import __version__
from .commands import calibrate, demo, distill, evaluate, inspect, prune, push, sweep
from .core.errors import VBPruneError, error_line

# name -> module with HELP, add_arguments(parser) and run(args), in the order --help lists
COMMANDS = {
    "calibrate": calibrate,
    "prune": prune,
    "evaluate": evaluate,
    "distill": distill,
    "demo": demo,
    "sweep": sweep,
    "inspect": inspect,
    "push": push,
}


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is none to show (required
    options, flags, options that default to unset)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``vbprune`` argument parser, one subcommand per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="vbprune", description="Variance-Based Pruning of trained vision models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        command = subcommands.add_parser(
            name, help=module.HELP, description=module.HELP,
            formatter_class=_DefaultsShown,
            # options it passes on (distill: the Trainer's) are never abbreviations of its own
            allow_abbrev=not getattr(module, "EXTRA_ARGUMENTS", False),
        )  # fmt: skip
        module.add_arguments(command)
        command.add_argument(
            "--quiet", action="store_true",
            help="no progress bars and no progress lines; results are still printed",
        )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vbprune`` command.

    A :class:`~vbprune.VBPruneError` (bad input: a ratio out of range, a missing column,
    a non-empty output, ...) is printed as one line and exits with 2; anything else is a
    bug and keeps its traceback.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(COMMANDS[args.command], "EXTRA_ARGUMENTS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # distill: TrainingArguments fields, parsed by transformers
    if args.quiet:  # read by tqdm, datasets and huggingface_hub when their bars start
        import os

        for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                     "HF_HUB_DISABLE_PROGRESS_BARS"):  # fmt: skip
            os.environ[name] = "1"
    try:
        code = COMMANDS[args.command].run(args)
        _close_process_group()
        return code
    except VBPruneError as error:
        print(f"vbprune {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2


def _close_process_group() -> None:
    """End a finished multi-process run's process group before the interpreter exits:
    left to interpreter teardown, gloo's threads can abort a process that has done its
    work ("terminate called without an active exception")."""
    dist = sys.modules.get("torch.distributed")  # never imported here just for this
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
