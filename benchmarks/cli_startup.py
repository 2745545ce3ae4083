"""How fast the command line answers, and what ``import vbprune`` costs.

    python benchmarks/cli_startup.py                      # this checkout
    python benchmarks/cli_startup.py --baseline OLD/src   # side by side with another tree

Each command runs in a fresh interpreter, in turns (this tree, the baseline, this tree,
...), and the median wall time of ``--repeats`` runs is printed; with ``--baseline`` the
ratio baseline / this tree of each pair too. The baseline is any source folder holding a
``vbprune`` package (e.g. ``git worktree add /tmp/old v0.1 && ... --baseline /tmp/old/src``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CLI = "import sys; from vbprune.cli import main; sys.exit(main({argv!r}))"
COMMANDS = {
    "vbprune --help": CLI.format(argv=["--help"]),
    "vbprune prune --help": CLI.format(argv=["prune", "--help"]),
    'python -c "import vbprune"': "import vbprune",
    "import vbprune; vbprune.prune_model": "import vbprune; vbprune.prune_model",
}


def wall_time(code: str, src: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another tree's src/ to compare with")
    args = parser.parse_args()
    trees = {"this tree": SRC} | ({"baseline": args.baseline} if args.baseline else {})
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeats}")
    print("| command | " + " | ".join(trees) + (" | baseline / this |" if args.baseline else " |"))
    print("|---" * (len(trees) + 1 + bool(args.baseline)) + "|")
    for label, code in COMMANDS.items():
        for src in trees.values():
            wall_time(code, src)  # warm-up: file caches
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, src in trees.items():
                times[name].append(wall_time(code, src))
        medians = {name: statistics.median(values) for name, values in times.items()}
        cells = [f"{medians[name]:.2f} s" for name in trees]
        if args.baseline:
            ratios = [b / a for a, b in zip(times["this tree"], times["baseline"])]
            cells.append(f"{statistics.median(ratios):.1f}x")
        print(f"| `{label}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
