"""The package keeps its shape: no import circle, the maths imports only torch, the
command line and ``import vbprune`` stay light, modules stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vbprune

PACKAGE = Path(vbprune.__file__).resolve().parent
HEAVY = ("torch", "transformers", "timm", "accelerate", "datasets", "evaluate")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, anywhere in the file (inside
    functions and ``TYPE_CHECKING`` blocks too), resolved to a module of ``known``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    found = modules()
    graph = {name: imports_of(path, set(found)) for name, path in found.items()}
    assert graph["vbprune.cli"] >= {"vbprune.commands.prune"}  # the parser resolves imports
    assert "vbprune.core.statistics" in graph["vbprune.core.selection"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# The layers of docs/architecture.md, bottom up: a module imports only lower layers and
# its own subpackage.
LAYERS = [
    {"core", "_version"},
    {"_extras"},  # optional dependencies, named when missing (standard library only)
    {"hf_remote"},
    {"architectures"},
    {"planning"},  # the steps of a pruning and the plans of budgets and heads
    {"calibration", "pruning"},
    {"io"},
    {"data", "training", "evaluation"},
    {"_digits", "_timm_hook"},
    {"commands"},
    {"cli"},
    {"", "__main__"},  # the package's __init__ and `python -m vbprune`
]


def layer_of(module: str) -> tuple[int, str]:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, layer in enumerate(LAYERS) if part in layer), part


def test_each_layer_imports_only_layers_below_it():
    found = modules()
    wrong = []
    for name, path in found.items():
        level, part = layer_of(name)
        for target in imports_of(path, set(found)):
            target_level, target_part = layer_of(target)
            if target_part != part and target_level >= level:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_core_imports_only_torch_safetensors_and_itself():
    allowed_external = {"torch", "safetensors"}
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:  # vbprune.core.*
                    continue
                assert node.level == 0, f"{path.name} imports outside vbprune.core"
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed_external or top in sys.stdlib_module_names, (
                    f"{path.name} imports {name}"
                )


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > 400}  # fmt: skip
    assert not long, long


def loaded_after(code: str) -> set[str]:
    """The heavy libraries a fresh interpreter has imported after running ``code``
    (``transformers.trainer`` counted apart)."""
    probe = (
        f"import sys\n{code}\n"
        f"loaded = [m for m in {(*HEAVY, 'transformers.trainer')!r} if m in sys.modules]\n"
        "print('loaded:', *loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), result.stdout
    return set(last.split()[1:])


HELP = "from vbprune.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [["--help"], *([name, "--help"] for name in
                   ("calibrate", "prune", "evaluate", "distill", "demo", "sweep", "push"))],
)  # fmt: skip
def test_cli_help_loads_no_heavy_library(argv):
    assert loaded_after(HELP.format(argv=argv)) == set()


@pytest.mark.slow
def test_import_vbprune_is_light_and_names_load_on_use():
    assert loaded_after("import vbprune") == set()
    # the maths needs torch only; the Trainer machinery waits for its own name
    assert loaded_after("import vbprune\nvbprune.prune_model") == {"torch"}
    assert loaded_after("import vbprune.core.config") == set()  # the CLI builds on it
    assert "transformers.trainer" in loaded_after("import vbprune\nvbprune.DistillationTrainer")


def test_every_public_name_resolves():
    for name in vbprune.__all__:
        assert getattr(vbprune, name) is not None, name
    assert set(dir(vbprune)) >= set(vbprune.__all__)
    assert vbprune.DistillationTrainer.__module__ == "vbprune.training.trainer"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vbprune.nothing  # noqa: B018


def test_every_option_has_one_line_of_help_and_shows_its_default():
    from vbprune.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:
        for name, command in action.choices.items():
            for option in command._actions:
                if option.option_strings and option.dest != "help":
                    assert option.help, f"vbprune {name} {option.option_strings[0]} has no help"
            text = command.format_help()
            assert "(default: None)" not in text  # nothing to show is not shown
    prune = next(iter(parser._subparsers._group_actions)).choices["prune"].format_help()
    assert "(default: mean)" in " ".join(prune.split())  # --compensate
