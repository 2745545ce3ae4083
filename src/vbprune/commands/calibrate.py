"""``vbprune calibrate``: record post-activation MLP statistics on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import OutputExistsError
from .arguments import add_covariance_fraction, add_data_arguments, add_model_arguments
from .options import DataOptions, ModelOptions, OutputOptions

HELP = "record post-activation MLP statistics on a dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune calibrate``."""
    add_model_arguments(parser)
    add_data_arguments(parser, required=True)
    parser.add_argument("--output", required=True, help="statistics file (.safetensors)")
    parser.add_argument(
        "--covariance",
        action="store_true",
        help="also record every MLP's covariance, for --compensate ls (H^2 float64 per "
        "MLP: DeiT-B takes 906 MB)",
    )
    parser.add_argument(
        "--heads",
        action="store_true",
        help="also record every attention's output-projection input (its heads' "
        "outputs), for `vbprune prune --heads`",
    )
    add_covariance_fraction(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")


def run(args: argparse.Namespace) -> int:
    """Statistics of every MLP, merged over processes, written to ``--output``."""
    return calibrate_statistics(
        ModelOptions.from_args(args), DataOptions.from_args(args), OutputOptions.from_args(args),
        covariance=args.covariance, heads=args.heads,
    )  # fmt: skip


def calibrate_statistics(
    model_options: ModelOptions,
    data: DataOptions,
    out: OutputOptions,
    covariance: bool,
    heads: bool = False,
) -> int:
    """Check the output file, load the model, calibrate (the attention sites too with
    ``heads``), write the statistics."""
    from ..io.folders import check_parents, remove_own_temporaries
    from ..io.model_specs import record_spec
    from .runtime import calibrate, make_accelerator, prepare_model

    accelerator = make_accelerator()
    output = Path(out.output)
    if output.is_dir():
        raise OutputExistsError(f"--output {output} is a folder; give a .safetensors file path")
    check_parents(output)
    if output.exists() and not out.overwrite:  # before the calibration, not after
        raise OutputExistsError(f"--output {output} exists (pass --overwrite to replace it)")
    model = prepare_model(model_options, accelerator)
    stats, info = calibrate(data, model, accelerator, covariance=covariance, heads=heads,
                            model_spec=record_spec(model_options.model))  # fmt: skip
    if accelerator.is_main_process:
        remove_own_temporaries(output)  # of a run killed while writing this file
        stats.save(output)
        attention = info.get("attention_sites", 0)
        sites = f"{len(stats) - attention} MLPs" + (
            f" and {attention} attentions" if attention else "")  # fmt: skip
        print(f"wrote statistics of {sites} ({info['seconds']} s) to {output}")
    accelerator.wait_for_everyone()
    return 0
