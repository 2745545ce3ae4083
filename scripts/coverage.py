"""Which models vbprune can prune: every timm registry name, every transformers
image-classification type.

Each model is built on the meta device (no memory, no weights; a time limit per model)
and its MLPs are matched against the layout table: supported-exact (nothing couples the
hidden neurons), supported-approximate (a hidden LayerNorm or GRN: the fold is
approximate), or unsupported with the reason. Its attention modules are matched against
the attention table: heads prunable ("yes": every attention module matched, at least one
site) or not ("no", with the first attention module that cannot lose heads, or "no
attention"). Writes the table that docs/supported_models.md shows.

    python scripts/coverage.py --output docs/supported_models.md

The rows themselves are verified on real (small, random) models by the layout probe in
tests/test_layouts.py.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import time
import warnings
from typing import NamedTuple

import torch


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


class Row(NamedTuple):
    """One model: its MLP status and its attention heads' status."""

    library: str
    name: str
    status: str  # "exact" | "approximate" | "unsupported"
    detail: str  # the MLP layouts, or why not
    heads: str = "no"  # "yes" | "no"
    heads_detail: str = ""  # the attention layouts, or the first problem
    heads_reason: str = ""  # the short reason class of a "no"


def classify(model: torch.nn.Module) -> tuple[str, str]:
    """("exact" | "approximate" | "unsupported", layouts or reason)."""
    from vbprune.architectures.finder import find_sites, unsupported_error

    sites, problems = find_sites(model)
    if problems or not sites:
        return "unsupported", str(unsupported_error(model, problems)).split(": ", 1)[-1]
    layouts = ", ".join(sorted({site.layout for site in sites}))
    return ("exact" if all(site.exact for site in sites) else "approximate"), layouts


_PROBLEM = re.compile(
    r"^(the model|\S*) (?:\((timm|transformers|torch) (\w+)\): (.*)"
    r"|is a (timm|transformers|torch) (\w+), which has no row in the table of attention layouts)$"
)


def _python_module(model: torch.nn.Module, path: str) -> str:
    """The short Python module of the module at ``path`` (``beit``, ``swin_transformer_v2``,
    ``beit`` for transformers' ``modeling_beit``), or ``""``."""
    try:
        module = model.get_submodule("" if path == "the model" else path)
    except AttributeError:
        return ""
    return type(module).__module__.rsplit(".", 1)[-1].removeprefix("modeling_")


def heads_reason(model: torch.nn.Module, problem: str) -> str:
    """The short reason class of one attention problem: the class, where it is from (timm's
    ``Attention`` is the class of several designs) and why, its numbers as ``N``."""
    found = _PROBLEM.match(problem)
    if not found:
        return problem
    path, library, kind, reason = found.group(1, 2, 3, 4)
    if reason is None:
        library, kind, reason = found.group(5), found.group(6), "no row in the table"
    reason = re.sub(r"\b\d+\b", "N", reason)  # head counts and widths differ by model
    where = _python_module(model, path) if library != "torch" else ""
    return f"{library} {kind} ({where}): {reason}" if where else f"{library} {kind}: {reason}"


def classify_heads(model: torch.nn.Module) -> tuple[str, str, str]:
    """("yes" | "no", attention layouts or the first problem, the short reason of a "no")."""
    from vbprune.architectures.finder import find_attention_sites_and_problems

    sites, problems = find_attention_sites_and_problems(model)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return "no", problems[0] + more, heads_reason(model, problems[0])
    if not sites:
        return "no", "no attention", "no attention"
    layouts = ", ".join(sorted({site.layout for site in sites}))
    if not all(site.exact for site in sites):
        layouts += " (approximate: a norm over the heads before the output projection)"
    return "yes", layouts, ""


def classify_all(library: str, name: str, model: torch.nn.Module) -> Row:
    """Both classifications; an error of the attention finder leaves the MLPs' result."""
    mlp = classify(model)
    try:
        heads = classify_heads(model)
    except _Timeout:
        raise
    except Exception as error:
        reason = f"the attention finder fails: {type(error).__name__}"
        heads = ("no", f"{reason}: {str(error).strip()[:120]}", reason)
    return Row(library, name, *mlp, *heads)


def _failed(library: str, name: str, reason: str) -> Row:
    """A model that did not build: neither its MLPs nor its heads."""
    short = reason.split(":")[0]
    return Row(library, name, "unsupported", reason, "no", reason, short)


def timm_rows(limit: int, names: list[str] | None):
    import timm

    for name in names or timm.list_models():
        signal.alarm(limit)
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = timm.create_model(name, pretrained=False)
            yield classify_all("timm", name, model)
        except _Timeout:
            yield _failed("timm", name, f"not built within {limit} s")
        except Exception as error:  # a model that does not build offline
            yield _failed("timm", name, f"does not build: {type(error).__name__}")
        finally:
            signal.alarm(0)


def hf_rows(limit: int):
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES as MAPPING,
    )

    for model_type, names in MAPPING.items():
        name = names[0] if isinstance(names, tuple) else names
        signal.alarm(limit)
        try:
            config = AutoConfig.for_model(model_type)
            if model_type == "timm_wrapper":  # a transformers wrapper of any timm model
                config.architecture = "vit_base_patch16_224"
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = getattr(transformers, name)(config)
            yield classify_all("transformers", model_type, model)
        except _Timeout:
            yield _failed("transformers", model_type, f"not built within {limit} s")
        except Exception as error:
            reason = str(error).strip().splitlines()[0][:120]
            yield _failed("transformers", model_type, f"does not build: {reason}")
        finally:
            signal.alarm(0)


def _reason(row: Row) -> str:
    """A short reason class of an unsupported row."""
    detail = row.detail
    if "no module of a known MLP layout" in detail:
        return "no MLP-like module (convolutional networks)"
    if detail.startswith(("does not build", "not built")):
        return detail.split(":")[0]
    found = re.search(r"\((?:timm|transformers) (\w+)\): (.*?)(?: \(and \d+ more\))?$", detail)
    if found:
        return f"{found.group(1)}: {found.group(2).split(': ', 1)[-1]}"
    found = re.search(r"is a \w+ (\w+), which has no row", detail)
    return f"{found.group(1)}: no row in the table" if found else detail


def _cell(text: str) -> str:
    return text.replace("|", "/")


def _attention_table() -> list[str]:
    """The attention layouts (rows of ``ATTENTION_LAYOUTS``) and the modules left alone."""
    from vbprune.architectures.layouts import ATTENTION_LAYOUTS, IGNORED_ATTENTION

    lines = ["| library | classes | Python module | layout | heads prunable, or why not |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in ATTENTION_LAYOUTS:
        classes = ", ".join(f"`{name}`" for name in row.classes)
        where = f"`{row.module}`" if row.module else "any"
        verdict = f"no: {row.refused}" if row.refused else "yes"
        if row.when:
            verdict += f" (where `{row.when}` is present)"
        lines.append(f"| {row.library} | {classes} | {where} | {_cell(row.note)} | "
                     f"{_cell(verdict)} |")  # fmt: skip
    lines += ["", "Attention modules left alone (their output is the pre-logits): "
              + ", ".join(f"`{name}` ({why})" for name, why in IGNORED_ATTENTION.items())
              + ". Any other module whose class name says attention (and that holds "
              "weights) with no row makes the model's heads unprunable."]  # fmt: skip
    return lines


def render(rows: list[Row], seconds: float) -> str:
    counts = collections.Counter((row.library, row.status) for row in rows)
    totals = collections.Counter(row.library for row in rows)
    heads = collections.Counter(row.library for row in rows if row.heads == "yes")
    lines = [
        "# Supported models",
        "",
        "Written by `python scripts/coverage.py --output docs/supported_models.md` "
        f"(timm and transformers as installed; {seconds:.0f} s). Every model is built "
        "with random weights on the meta device, its MLPs matched against the layout "
        "table and its attention modules against the attention table "
        "(`vbprune/architectures/layouts.py`).",
        "",
        "## MLP neurons",
        "",
        "- **exact**: nothing couples the hidden neurons; removing a neuron whose "
        "activation is constant, with the mean fold, leaves the output unchanged.",
        "- **approximate**: a hidden LayerNorm or Global Response Norm normalises over all "
        "hidden neurons (EVA02 base/large, ConvNeXt-V2): the model is pruned, the fold is "
        "approximate (on small random models the layout probe moves the outputs by 0.7-2.3 "
        "% for ConvNeXt-V2 and 26 % for EVA02-base; see the README).",
        "- **unsupported**: the reason is given.",
        "",
        "| library | exact | approximate | unsupported |",
        "|---|---|---|---|",
    ]
    for library in ("timm", "transformers"):
        lines.append(
            f"| {library} | {counts[(library, 'exact')]} | "
            f"{counts[(library, 'approximate')]} | {counts[(library, 'unsupported')]} |"
        )
    lines += ["", "Unsupported, by reason:", ""]
    for reason, count in collections.Counter(_reason(r) for r in rows if r.status == "unsupported"
                                             ).most_common():  # fmt: skip
        lines.append(f"- {count}: {reason}")
    lines += [
        "",
        "## Attention heads",
        "",
        "- **yes**: every attention module of the model has a row in the attention table "
        "that can lose heads (and there is at least one): `PruningConfig(heads=True)` "
        "prunes whole heads. The layouts are given.",
        "- **no**: the first attention module that cannot lose heads and why (and how many "
        'more), or "no attention".',
        "",
        "| library | heads prunable | models | MLPs and heads both prunable |",
        "|---|---|---|---|",
    ]
    for library in ("timm", "transformers"):
        both = sum(1 for row in rows if row.library == library and row.heads == "yes"
                   and row.status != "unsupported")  # fmt: skip
        lines.append(f"| {library} | {heads[library]} | {totals[library]} | {both} |")
    lines += ["", "Heads not prunable, by reason:", ""]
    for reason, count in collections.Counter(r.heads_reason for r in rows if r.heads == "no"
                                             ).most_common():  # fmt: skip
        lines.append(f"- {count}: {_cell(reason)}")
    lines += ["", "### Attention layouts", "", *_attention_table()]
    for library in ("timm", "transformers"):
        lines += ["", f"## {library}", "",
                  "| model | MLPs | MLP layouts, or why not | heads | attention layouts, or why "
                  "not |", "|---|---|---|---|---|"]  # fmt: skip
        for row in rows:
            if row.library == library:
                detail = row.detail
                if "no module of a known MLP layout" in detail:
                    detail = _reason(row)
                heads_detail = "(not built)" if row.heads_detail == row.detail else row.heads_detail
                lines.append(f"| `{row.name}` | {row.status} | {_cell(detail)} | {row.heads} | "
                             f"{_cell(heads_detail)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="write the markdown table here")
    parser.add_argument("--limit", type=int, default=60, help="seconds per model")
    parser.add_argument("--timm-names", nargs="*", help="only these timm names")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    rows = [*timm_rows(args.limit, args.timm_names), *hf_rows(args.limit)]
    seconds = time.perf_counter() - start
    counts = collections.Counter((row.library, row.status) for row in rows)
    for (library, status), count in sorted(counts.items()):
        print(f"{library:12s} {status:12s} {count}")
    for library in ("timm", "transformers"):
        total = sum(1 for row in rows if row.library == library)
        prunable = sum(1 for row in rows if row.library == library and row.heads == "yes")
        print(f"{library:12s} heads        {prunable} of {total}")
    print(f"{seconds:.0f} s")
    if args.output:
        with open(args.output, "w") as file:
            file.write(render(rows, seconds))


if __name__ == "__main__":
    main()
