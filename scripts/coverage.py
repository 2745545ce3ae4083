"""Which models vbprune can prune: every timm registry name, every transformers
image-classification type.

Each model is built on the meta device (no memory, no weights; a time limit per model)
and its MLPs are matched against the layout table: supported-exact (nothing couples the
hidden neurons), supported-approximate (a hidden LayerNorm or GRN: the fold is
approximate), or unsupported with the reason. Writes the table that
docs/supported_models.md shows.

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

import torch


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def classify(model: torch.nn.Module) -> tuple[str, str]:
    """("exact" | "approximate" | "unsupported", layouts or reason)."""
    from vbprune.architectures.finder import find_sites, unsupported_error

    sites, problems = find_sites(model)
    if problems or not sites:
        return "unsupported", str(unsupported_error(model, problems)).split(": ", 1)[-1]
    layouts = ", ".join(sorted({site.layout for site in sites}))
    return ("exact" if all(site.exact for site in sites) else "approximate"), layouts


def timm_rows(limit: int, names: list[str] | None):
    import timm

    for name in names or timm.list_models():
        signal.alarm(limit)
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = timm.create_model(name, pretrained=False)
            yield ("timm", name, *classify(model))
        except _Timeout:
            yield ("timm", name, "unsupported", f"not built within {limit} s")
        except Exception as error:  # a model that does not build offline
            yield ("timm", name, "unsupported", f"does not build: {type(error).__name__}")
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
            yield ("transformers", model_type, *classify(model))
        except _Timeout:
            yield ("transformers", model_type, "unsupported", f"not built within {limit} s")
        except Exception as error:
            reason = str(error).strip().splitlines()[0][:120]
            yield ("transformers", model_type, "unsupported", f"does not build: {reason}")
        finally:
            signal.alarm(0)


def _reason(row: tuple[str, str, str, str]) -> str:
    """A short reason class of an unsupported row."""
    detail = row[3]
    if "no module of a known MLP layout" in detail:
        return "no MLP-like module (convolutional networks)"
    if detail.startswith(("does not build", "not built")):
        return detail.split(":")[0]
    found = re.search(r"\((?:timm|transformers) (\w+)\): (.*?)(?: \(and \d+ more\))?$", detail)
    if found:
        return f"{found.group(1)}: {found.group(2).split(': ', 1)[-1]}"
    found = re.search(r"is a \w+ (\w+), which has no row", detail)
    return f"{found.group(1)}: no row in the table" if found else detail


def render(rows: list[tuple[str, str, str, str]], seconds: float) -> str:
    counts = collections.Counter((library, status) for library, _, status, _ in rows)
    lines = [
        "# Supported models",
        "",
        "Written by `python scripts/coverage.py --output docs/supported_models.md` "
        f"(timm and transformers as installed; {seconds:.0f} s). Every model is built "
        "with random weights on the meta device and its MLPs matched against the layout "
        "table (`vbprune/architectures/layouts.py`).",
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
    for reason, count in collections.Counter(_reason(r) for r in rows if r[2] == "unsupported"
                                             ).most_common():  # fmt: skip
        lines.append(f"- {count}: {reason}")
    for library in ("timm", "transformers"):
        lines += ["", f"## {library}", "", "| model | status | MLP layouts, or why not |",
                  "|---|---|---|"]  # fmt: skip
        for lib, name, status, detail in rows:
            if lib == library:
                if "no module of a known MLP layout" in detail:
                    detail = _reason((lib, name, status, detail))
                lines.append(f"| `{name}` | {status} | {detail.replace('|', '/')} |")
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
    counts = collections.Counter((library, status) for library, _, status, _ in rows)
    for (library, status), count in sorted(counts.items()):
        print(f"{library:12s} {status:12s} {count}")
    if args.output:
        with open(args.output, "w") as file:
            file.write(render(rows, seconds))


if __name__ == "__main__":
    main()
