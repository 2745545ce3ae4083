"""Write docs/api.md, the API reference, from the docstrings of the public objects.

    python scripts/make_api_docs.py            # rewrite docs/api.md
    python scripts/make_api_docs.py --check    # exit 1 if docs/api.md is out of date

Docstrings are Google style; ``Args:``/``Raises:`` become lists, ``Example:`` and ``::``
blocks become code. tests/test_docs.py fails when docs/api.md and the code disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "api.md"

# (section title, what it is for, [module, [names]]): the order a reader meets them in
SECTIONS = [
    (
        "Pruning: `import vbprune`",
        "Statistics, selection, surgery, counting, saving and loading.",
        [
            ("vbprune", [
                "VarianceCalibrator", "NeuronStats", "ActivationStats", "PruningConfig",
                "prune_model", "PruningResult", "CRITERIA", "COMPENSATIONS", "score_neurons",
                "plan_pruning", "select_neurons", "PruningPlan", "SitePlan", "apply_plan",
                "magnitude_scores", "obs_scores", "find_mlp_sites", "MLPSite",
                "find_attention_sites", "AttentionSite", "attention_heads",
                "model_backend", "count_params", "count_macs", "latency_table", "LatencyTable",
                "save_pretrained",
                "from_pretrained", "push_to_hub", "push_folder",
            ]),
        ],
    ),
    (
        "Errors",
        "Every error vbprune raises on purpose derives from `VBPruneError`; each also keeps "
        "its built-in parent (`ValueError`, `FileNotFoundError`, ...).",
        [
            ("vbprune", [
                "VBPruneError", "ConfigError", "OptionTypeError", "UnsupportedModelError",
                "StatisticsError", "NonFiniteActivationError", "PlanError", "CheckpointError",
                "DatasetError", "MissingInputError", "OutputExistsError", "OutputNotWritableError",
                "HubError",
                "ProcessCountError", "MissingDependencyError",
            ]),
        ],
    ),
    (
        "Building blocks: `vbprune.core`",
        "The maths under `prune_model`, usable on their own on plain layers and tensors "
        "(they import only torch).",
        [
            ("vbprune.core.statistics", ["chan_merge", "merge_comoments"]),
            ("vbprune.core.registry", ["Registry", "Entry"]),
            ("vbprune.core.units", ["SiteUnits", "Removal", "Correction"]),
            ("vbprune.core.selection", [
                "score_units", "select_units", "plan_from_scores", "check_plan",
            ]),
            ("vbprune.core.validation", ["check_statistics"]),
            ("vbprune.core.surgery", [
                "shift_output", "add_to_inputs", "ensure_bias", "shrink_mlp", "keep_outputs",
                "keep_inputs", "keep_channels",
            ]),
            ("vbprune.core.least_squares", [
                "least_squares_correction", "lost_output_variance", "obs_removal_scores",
            ]),
            ("vbprune.core.config", ["resolve_config"]),
        ],
    ),
    (
        "Data and models",
        "Datasets (Hub, streaming, ImageNet-style folders), preprocessing, model specs.",
        [
            ("vbprune.data", [
                "load_image_dataset", "image_transform", "with_image_transform", "ImageCollator",
                "make_loader", "shard_for_process",
            ]),
            ("vbprune.io.model_specs", ["load_model"]),
            ("vbprune.architectures", ["mlp_widths"]),
            ("vbprune.architectures.interface", ["input_size", "logits_of"]),
        ],
    ),
    (
        "Distillation and evaluation",
        "Recovering accuracy with knowledge distillation, and measuring it.",
        [
            ("vbprune", ["DistillationTrainingArguments", "DistillationTrainer"]),
            ("vbprune.training.trainer", ["TimmClassifier", "top1_metrics"]),
            ("vbprune.training.losses", ["distillation_loss"]),
            ("vbprune.training.checkpoints", [
                "is_complete", "last_complete_checkpoint", "check_complete", "remove_incomplete",
            ]),
            ("vbprune.evaluation.metrics", ["TopKAccuracy"]),
            ("vbprune.evaluation.accuracy", ["evaluate_model", "top1_accuracy"]),
            ("vbprune.evaluation.latency", ["measure_latency", "measure_latencies",
                                            "device_name"]),
            ("vbprune.evaluation.sweep", ["sweep", "table", "plot"]),
        ],
    ),
    (
        "Checkpoints and model cards",
        "Lower-level pieces of `save_pretrained` / `from_pretrained` / `push_to_hub`.",
        [
            ("vbprune.io.checkpoint", ["build_architecture"]),
            ("vbprune.architectures.widths", ["apply_widths"]),
            ("vbprune.io.metadata", [
                "loaded_metadata", "pruning_metadata", "upgrade_section", "merge_sections",
            ]),
            ("vbprune.io.weights", ["checkpoint_state_dict", "shape_differences"]),
            ("vbprune.io.model_card", ["render_model_card", "write_model_card"]),
        ],
    ),
]  # fmt: skip

SECTION = re.compile(r"^(Args|Arguments|Attributes|Raises|Returns|Yields|Examples?|Notes?):\s*$")
ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc):`(~?)([^`]+)`")
LISTED = {"Args", "Arguments", "Attributes", "Raises"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _role(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"  # ~ shows the last part


def _fence(lines: list[str]) -> list[str]:
    body = inspect.cleandoc("\n".join(lines)).splitlines()
    return ["```python", *body, "```"]


def docstring_markdown(doc: str) -> str:
    """Google-style docstring -> Markdown (sections as bold labels, entries as lists)."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        match = SECTION.match(line.strip())
        if match or line.rstrip().endswith("::"):
            # the block: following lines indented deeper than this one (or blank)
            base, j = _indent(line), i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                j += 1
            block = lines[i + 1 : j]
            while block and not block[-1].strip():
                block.pop()
            if not match:  # an RST literal block
                out += [line.rstrip()[:-1], "", *_fence(block)]
            elif match.group(1) in LISTED:
                out += [f"**{match.group(1)}**", ""]
                entry_indent = min((_indent(b) for b in block if b.strip()), default=0)
                for b in block:
                    if not b.strip():
                        continue
                    if _indent(b) == entry_indent:
                        name, _, text = b.strip().partition(":")
                        out.append(f"- `{name}`: {text.strip()}")
                    else:
                        out[-1] += " " + b.strip()
            elif match.group(1).startswith("Example"):
                out += [f"**{match.group(1)}**", "", *_fence(block)]
            else:
                text = " ".join(b.strip() for b in block if b.strip())
                out += [f"**{match.group(1)}**", "", text]
            out.append("")
            i = j
            continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    # RST markup -> Markdown, except inside code blocks, where it is code
    parts = re.split(r"(```python\n.*?```)", text, flags=re.S)
    for k in range(0, len(parts), 2):
        parts[k] = ROLE.sub(_role, parts[k])
        parts[k] = parts[k].replace("``", "`")
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


def _annotation(annotation) -> str:
    # postponed annotations are strings already; others are formatted as written
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _parameters(signature: inspect.Signature) -> list[str]:
    out, star_done = [], False
    for p in signature.parameters.values():
        if p.name in ("self", "cls"):
            continue
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, star_done = "*" + text, True
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        elif p.kind is p.KEYWORD_ONLY and not star_done:
            out.append("*")
            star_done = True
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}" if p.annotation is not p.empty else f"={p.default!r}"
        out.append(text)
    return out


def _signature(name: str, obj) -> str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = _parameters(signature)
    result = ""
    if signature.return_annotation is not inspect.Signature.empty:
        result = f" -> {_annotation(signature.return_annotation)}"
    one_line = f"{name}({', '.join(params)}){result}"
    if len(one_line) <= 88:
        return one_line
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){result}"


def _own_fields(cls) -> list[dataclasses.Field]:
    own = inspect.get_annotations(cls)
    return [f for f in dataclasses.fields(cls) if f.name in own]


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f" = `{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:
        return f" = `{field.default_factory()!r}`"
    return " (required)"


def _document_class(path: str, cls) -> list[str]:
    bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not object)
    out = [f"### class `{path}`" + (f" ({bases})" if bases else ""), ""]
    if dataclasses.is_dataclass(cls):
        inherited = any(dataclasses.is_dataclass(b) for b in cls.__mro__[1:])
        fields = _own_fields(cls)
        heading = "Fields added to the base" if inherited else "Fields"
        if fields and all("help" in f.metadata for f in fields):  # peft-style help texts
            out += [f"**{heading}**", ""]
            out += [f"- `{f.name}`{_default(f)}: {f.metadata['help']}" for f in fields]
            out.append("")
        elif fields:
            out += [f"{heading}: " + ", ".join(f"`{f.name}`" for f in fields), ""]
    elif "__init__" in cls.__dict__:
        out += ["```python", _signature(cls.__name__, cls.__init__), "```", ""]
    # the class's own docstring: getdoc would borrow a torch or transformers base's
    out += [docstring_markdown(inspect.cleandoc(cls.__dict__.get("__doc__") or "")), ""]
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        kind = "property " if isinstance(member, property) else ""
        if isinstance(function, (classmethod, staticmethod)):
            kind = f"{type(function).__name__} "
            function = function.__func__
        # only methods documented here: getdoc would borrow torch's docs for forward()
        if not inspect.isfunction(function) or not function.__doc__:
            continue
        out += [f"#### {kind}`{cls.__name__}.{name}`", ""]
        if not isinstance(member, property):
            out += ["```python", _signature(name, function), "```", ""]
        out += [docstring_markdown(inspect.getdoc(function)), ""]
    return out


def _document_registry(path: str, registry) -> list[str]:
    """A table of a registry's entries: what can be named, and what each needs."""
    out = [
        f"### `{path}`",
        "",
        f"The registered {registry.kind} functions, by name (`{path}.register(name, ...)` "
        'adds one; see docs/architecture.md, "How to add").',
        "",
        "| name | what it does | needs the covariance |",
        "|---|---|---|",
    ]
    for entry in registry.values():
        covariance = "yes" if entry.needs_covariance else ""
        out.append(f"| `{entry.name}` | {entry.help} | {covariance} |")
    return [*out, ""]


def render() -> str:
    """The whole of docs/api.md as a string."""
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/make_api_docs.py`; do not edit by",
        "hand (tests/test_docs.py checks it is current). Start with the",
        "[quickstart](quickstart.md).",
        "",
    ]
    for title, purpose, groups in SECTIONS:
        out += [f"## {title}", "", purpose, ""]
        for module_name, names in groups:
            module = importlib.import_module(module_name)
            for name in names:
                obj = getattr(module, name)
                path = f"{module_name}.{name}"
                if inspect.isclass(obj):
                    out += _document_class(path, obj)
                elif type(obj).__name__ == "Registry":
                    out += _document_registry(path, obj)
                else:
                    out += [f"### `{path}`", "", "```python", _signature(name, obj), "```", ""]
                    out += [docstring_markdown(inspect.getdoc(obj) or ""), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python scripts/make_api_docs.py")
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
