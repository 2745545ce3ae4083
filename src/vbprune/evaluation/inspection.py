"""What pruning did (or would do), per layer: ``vbprune inspect``'s tables and plots.

Reads one of three kinds of path:

- a statistics file (``vbprune calibrate``): per site, the units, the variance spectrum,
  and the provenance recorded with the statistics;
- a pruned model folder (``vbprune.save_pretrained``): per site, the neurons (and heads)
  kept against the original, from the checkpoint's config;
- a prune output (``vbprune prune``: ``model/``, ``stats.safetensors``,
  ``report.json``): both, plus the lost variance per layer where the report has it.

Collapsed layers (under 2 % of their neurons kept) are listed in every case where widths
are known.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..core.errors import MissingInputError
from ..core.statistics import ActivationStats
from ..io.folders import read_model_config
from ..io.metadata import SECTION, upgrade_section
from ..pruning import COLLAPSE_SHARE


def path_kind(path: Path) -> str:
    """``"statistics"``, ``"model"`` or ``"prune_output"``.

    Raises:
        MissingInputError: a path that is none of them.
    """
    if path.is_file():
        return "statistics"
    if (path / "model").is_dir() and (path / "report.json").is_file():
        return "prune_output"
    if (path / "config.json").is_file():
        return "model"
    raise MissingInputError(
        f"{path} is neither a statistics file, a pruned model folder (config.json) nor a "
        "`vbprune prune` output (model/ and report.json)"
    )


def inspect_path(path: str | Path) -> dict[str, Any]:
    """Everything ``vbprune inspect`` shows of ``path``: ``kind``, ``layers`` (one row per
    site: ``site``, ``kind``, ``original``, ``kept``, and with statistics ``samples``,
    ``variance`` quantiles, ``dead`` (zero-variance units); with a report
    ``lost_variance``), ``collapsed`` (sites keeping under 2 %), ``provenance`` and the
    per-site variances (``spectra``, for the plot; not JSON)."""
    path = Path(path)
    kind = path_kind(path)
    layers: dict[str, dict[str, Any]] = {}
    provenance: dict[str, Any] = {}
    spectra: dict[str, torch.Tensor] = {}
    stats_file = path if kind == "statistics" else path / "stats.safetensors"
    if stats_file.is_file():
        stats = ActivationStats.load(stats_file)
        provenance["statistics"] = stats.provenance
        for name, entry in stats.items():
            spectra[name] = entry.var
            layers[name] = {"site": name, **_spectrum(entry.var), "samples": entry.count}
    if kind != "statistics":
        folder = path if kind == "model" else path / "model"
        section, report = _section(folder)
        provenance["model"] = {k: section.get(k) for k in ("base_model", "library_version")}
        provenance["model"]["pruning"] = section.get("pruning")
        original = report.get("original_widths") or {}
        for name, width in (section.get("widths") or {}).items():
            row = layers.setdefault(name, {"site": name})
            row.update(kind="mlp", kept=width, original=original.get(name))
        original_heads = report.get("original_heads") or {}
        for name, heads in (section.get("heads") or {}).items():
            row = layers.setdefault(name, {"site": name})
            row.update(kind="attention", kept=heads, original=original_heads.get(name))
        for name, lost in (report.get("lost_variance") or {}).items():
            layers.setdefault(name, {"site": name})["lost_variance"] = lost
    for row in layers.values():
        row.setdefault("kind", "attention" if str(row["site"]).endswith(("attn", "attention"))
                       else "mlp")  # fmt: skip
    collapsed = [
        row["site"] for row in layers.values()
        if row.get("kept") is not None and row.get("original")
        and row["kind"] == "mlp" and row["kept"] < COLLAPSE_SHARE * row["original"]
    ]  # fmt: skip
    return {"path": str(path), "kind": kind, "layers": list(layers.values()),
            "collapsed": collapsed, "provenance": provenance, "spectra": spectra}  # fmt: skip


def _spectrum(var: torch.Tensor) -> dict[str, Any]:
    values = var.double().flatten()
    quantiles = torch.quantile(values, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    return {
        "units": int(values.numel()),
        "variance": dict(zip(("min", "median", "max"), quantiles.tolist(), strict=True)),
        "dead": int((values <= 0).sum()),
    }


def _section(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's ``vbprune`` section (upgraded) and the prune report in it."""
    config = read_model_config(folder, str(folder))
    section = config.get(SECTION) or {}
    section = upgrade_section(section) if section else {}
    report = section.get("report") or {}
    if not report and (folder.parent / "report.json").is_file():
        report = json.loads((folder.parent / "report.json").read_text())
    return section, report


def markdown(inspection: dict[str, Any]) -> str:
    """The per-layer table (and collapsed layers, provenance) as Markdown."""
    lines = [f"# {inspection['path']} ({inspection['kind'].replace('_', ' ')})", "",
             "| site | kind | kept / original | variance min / median / max | dead | lost "
             "variance (mean fold / ls) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for row in inspection["layers"]:
        kept = "-" if row.get("kept") is None else (
            f"{row['kept']} / {row.get('original') or '?'}")  # fmt: skip
        variance = row.get("variance")
        spectrum = "-" if variance is None else " / ".join(
            _number(variance[k]) for k in ("min", "median", "max"))  # fmt: skip
        lost = row.get("lost_variance") or {}
        lost_text = " / ".join(_number(lost[k]) for k in ("mean", "ls") if k in lost) or "-"
        lines.append(f"| {row['site']} | {row['kind']} | {kept} | {spectrum} | "
                     f"{row.get('dead', '-')} | {lost_text} |")  # fmt: skip
    collapsed = inspection["collapsed"]
    lines += ["", f"Collapsed layers (under {COLLAPSE_SHARE:.0%} of their neurons kept): "
              + (", ".join(collapsed) if collapsed else "none")]  # fmt: skip
    lines += ["", "Provenance:", "", "```json",
              json.dumps(inspection["provenance"], indent=2), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def plot(inspection: dict[str, Any], folder: Path) -> list[Path]:
    """``widths.png`` (kept against original per layer, where known) and
    ``variance.png`` (the log-variance histogram per layer, with statistics); the files
    written."""
    from .._extras import require

    matplotlib = require("matplotlib", "demo", "vbprune inspect's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [r for r in inspection["layers"] if r.get("kept") is not None]
    if rows:
        figure, axis = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 4))
        names = [r["site"] for r in rows]
        axis.bar(names, [r.get("original") or r["kept"] for r in rows], color="lightgrey",
                 label="original")  # fmt: skip
        axis.bar(names, [r["kept"] for r in rows], color="C0", label="kept")
        axis.set_ylabel("neurons (heads)")
        axis.tick_params(axis="x", labelrotation=90, labelsize=6)
        axis.legend()
        figure.tight_layout()
        written.append(folder / "widths.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)
    spectra = inspection["spectra"]
    if spectra:
        figure, axis = plt.subplots(figsize=(7, 4))
        for index, (name, var) in enumerate(spectra.items()):
            logs = torch.log10(var.double().clamp_min(1e-12)).numpy()
            axis.hist(logs, bins=40, histtype="step", color=f"C{index % 10}",
                      label=name if len(spectra) <= 12 else None)  # fmt: skip
        axis.set_xlabel("log10 variance")
        axis.set_ylabel("units")
        if len(spectra) <= 12:
            axis.legend(fontsize=6)
        figure.tight_layout()
        written.append(folder / "variance.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)
    return written
