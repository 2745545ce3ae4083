"""``vbprune inspect``: what pruning did per layer, from statistics, a pruned model or a
prune output."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import OutputOptions

HELP = "per-layer widths, variance spectra, lost variance and provenance of a pruning"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune inspect``."""
    parser.add_argument(
        "path", help="a statistics file, a pruned model folder or a `vbprune prune` output"
    )
    parser.add_argument("--output", help="folder for inspect.md, inspect.json and the plots "
                        "(default: inspect-<name>)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")


def run(args: argparse.Namespace) -> int:
    """Write ``inspect.md``, ``inspect.json``, ``widths.png`` and ``variance.png``."""
    output = args.output or f"inspect-{Path(args.path).name.split('.')[0] or 'path'}"
    return inspect(args.path, OutputOptions.from_args(args, output=output))


def inspect(path: str, out: OutputOptions) -> int:
    """Read ``path``, print the per-layer table, write the outputs (atomically)."""
    import json

    from ..core.errors import MissingDependencyError
    from ..evaluation.inspection import inspect_path, markdown, plot
    from ..io.folders import atomic_directory, check_output_directory

    check_output_directory(out.output, out.overwrite, [path])
    inspection = inspect_path(path)
    table = markdown(inspection)
    with atomic_directory(out.output, overwrite=out.overwrite) as tmp:
        (tmp / "inspect.md").write_text(table)
        data = {k: v for k, v in inspection.items() if k != "spectra"}
        (tmp / "inspect.json").write_text(json.dumps(data, indent=2))
        try:
            plot(inspection, tmp)
        except MissingDependencyError as error:  # the tables are still written
            print(f"no plots: {error}")
    print(table)
    if inspection["collapsed"]:
        print(f"warning: {len(inspection['collapsed'])} layer(s) collapsed; prune with "
              "--min-keep or --scope layer to keep them")  # fmt: skip
    print(f"wrote {out.output}")
    return 0
