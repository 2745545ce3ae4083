"""A sweep of any model on any dataset: each point pruned from a fresh copy, evaluated
right after pruning against the dense model (top-1, top-5, loss, KL), with MACs, params
and the latencies of dense and pruned measured in turns. The rows, the table, the CSV
and the plot (top-1 against MACs and against measured latency, Pareto front marked)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..architectures.interface import logits_of

COLUMNS = ("criterion", "compensate", "heads", "target_macs", "ratio", "top1", "top5", "loss",
           "kl", "macs", "params", "dense_ms", "pruned_ms", "speedup", "pareto")  # fmt: skip


def point_key(row: dict[str, Any]) -> str:
    """What identifies a point (a finished one is not redone on resume)."""
    return (f"{row['criterion']}|{row['compensate']}|{row['heads']}|"
            f"{row.get('target_macs')}|{row.get('ratio')}")  # fmt: skip


def dense_logits(model: nn.Module, batches: Iterable[dict[str, Any]]) -> list[torch.Tensor]:
    """This process's logits of ``model`` per batch, on the CPU (the dense reference)."""
    param = next(model.parameters())
    model.eval()
    with torch.no_grad():
        return [
            logits_of(model(b["pixel_values"].to(param.device, param.dtype))).float().cpu()
            for b in batches
        ]


def compare(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    reference: list[torch.Tensor],
    accelerator: Any = None,
) -> dict[str, float]:
    """Top-1, top-5, mean cross-entropy and mean KL(dense || model) over every
    process's shard (``reference``: the dense logits of the same batches, in order)."""
    param = next(model.parameters())
    sums = torch.zeros(5, dtype=torch.float64)  # correct@1, correct@5, loss, kl, samples
    model.eval()
    with torch.no_grad():
        for batch, dense in zip(batches, reference, strict=True):
            logits = logits_of(model(batch["pixel_values"].to(param.device, param.dtype)))
            logits, labels = logits.float().cpu(), batch["labels"]
            top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
            sums[0] += float((top[:, 0] == labels).sum())
            sums[1] += float((top == labels[:, None]).any(-1).sum())
            sums[2] += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            sums[3] += float(torch.nn.functional.kl_div(
                logits.log_softmax(-1), dense.log_softmax(-1), log_target=True,
                reduction="sum",
            ))  # fmt: skip
            sums[4] += len(labels)
    if accelerator is not None and accelerator.num_processes > 1:
        sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
    count = max(float(sums[4]), 1.0)
    return {"top1": float(sums[0]) / count, "top5": float(sums[1]) / count,
            "loss": float(sums[2]) / count, "kl": float(sums[3]) / count,
            "samples": int(sums[4])}  # fmt: skip


def mark_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pareto``: no other row has at least the top-1 with fewer MACs (or more top-1 with
    as few)."""
    for row in rows:
        row["pareto"] = not any(
            (o["macs"] <= row["macs"] and o["top1"] > row["top1"])
            or (o["macs"] < row["macs"] and o["top1"] >= row["top1"])
            for o in rows
        )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown(rows: list[dict[str, Any]], dense: dict[str, Any]) -> str:
    """The rows as a Markdown table, the dense model first."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in [{**dense, "criterion": "dense"}, *rows]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (the columns of :data:`COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(rows: list[dict[str, Any]], dense: dict[str, Any], path) -> None:
    """Top-1 against MACs and against the measured latency, the Pareto front marked."""
    from .._extras import require

    matplotlib = require("matplotlib", "demo", "vbprune sweep's plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    settings = dict.fromkeys((r["criterion"], r["compensate"], r["heads"]) for r in rows)
    for index, setting in enumerate(settings):
        line = sorted((r for r in rows if (r["criterion"], r["compensate"], r["heads"])
                       == setting), key=lambda r: r["macs"])  # fmt: skip
        label = f"{setting[0]}, {setting[1]}" + (", heads" if setting[2] else "")
        for axis, key in ((axes[0], "macs"), (axes[1], "pruned_ms")):
            axis.plot([r[key] for r in line], [100 * r["top1"] for r in line], marker="o",
                      color=f"C{index % 10}", label=label)  # fmt: skip
    front = [r for r in rows if r["pareto"]]
    for axis, key in ((axes[0], "macs"), (axes[1], "pruned_ms")):
        axis.scatter([r[key] for r in front], [100 * r["top1"] for r in front], s=120,
                     facecolors="none", edgecolors="black", label="Pareto front")  # fmt: skip
        axis.axhline(100 * dense["top1"], color="grey", linestyle=":", label="dense")
        axis.set_ylabel("top-1 (%) right after pruning")
    axes[0].set_xlabel("MACs")
    axes[1].set_xlabel("latency (ms per batch, measured in turns with the dense model)")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
