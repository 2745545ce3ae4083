"""Model cards for pruned models: rendered from ``model_cards/vbprune.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError
from .folders import is_timm_config, read_model_config
from .metadata import SECTION, upgrade_section

TEMPLATE = "vbprune.md"


def template_path() -> Path:
    """The card template: packaged with a built wheel, or ``model_cards/`` of a checkout."""
    package = Path(__file__).resolve().parents[1]  # src/vbprune (or site-packages/vbprune)
    for folder in (package / "model_cards", package.parents[1] / "model_cards"):
        if (folder / TEMPLATE).is_file():
            return folder / TEMPLATE
    raise FileNotFoundError(f"model card template {TEMPLATE} not found")


def _millions(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 1e6:.2f} M"


def _giga(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / 1e9:.2f} G" if value >= 1e8 else f"{value / 1e6:.2f} M"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _pruned_percent(original: Mapping[str, int], widths: Mapping[str, int], ratio) -> str:
    """Share of MLP neurons removed, from the widths when known (round_to and min_keep
    make it differ from the requested ratio)."""
    if original and widths:
        return f"{100 * (1 - sum(widths.values()) / sum(original.values())):.1f} %"
    return f"{100 * ratio:g} %" if ratio is not None else "some"


def _title(repo_id: str, base_model: str, pruned: str, local: bool = False) -> str:
    """The card's title: a Hub id as given; for a local save (a folder named ``model``,
    say) the base model's name and how much was pruned (``pruned``: ``"50 % of MLP
    neurons removed"``, ``"30.0 % of MACs kept"``)."""
    if "/" in repo_id and not local:
        return repo_id
    name = base_model.split(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1] or repo_id
    return f"{name}, {pruned} (VBP)"


_MEASURES = {"macs": "MACs", "params": "parameters"}


def _budget_texts(
    pruning: Mapping[str, Any], budget: Mapping[str, Any], heads: bool
) -> tuple[str, str | None]:
    """What was asked, for the method's sentence (``ratio 0.5`` as before for a plain
    ratio), and a line on the budget asked for and achieved (``None`` without one)."""
    ratio = pruning.get("ratio")
    measure = next((m for m in _MEASURES if pruning.get(f"target_{m}") is not None), None)
    if pruning.get("target_latency") is not None:
        return _latency_texts(pruning["target_latency"], budget, heads)
    if measure is None:  # a ratio, with heads: the MACs it saves, from neurons and heads
        asked = f"ratio {ratio}" + (", the MACs it saves taken from neurons and heads" * heads)
    else:
        share, what = pruning[f"target_{measure}"], _MEASURES[measure]
        asked = (f"{'attention heads included, ' if heads else ''}per {what[:-1]} saved, "
                 f"down to {100 * share:g} % of the {what}")  # fmt: skip
    if budget.get("achieved") is None:
        return asked, None
    what = _MEASURES.get(budget.get("measure"), "MACs")
    line = (f"Budget: {100 * budget.get('target', 0):.4g} % of the original {what} asked for, "
            f"{_percent(budget['achieved'])} kept (counted on the pruned model)")  # fmt: skip
    if budget.get("head_weight") is not None:
        how = (" (chosen among several by the KL divergence of the pruned logits from the "
               "original ones on calibration images)" if budget.get("kl") else "")  # fmt: skip
        line += f"; heads weighed {budget['head_weight']:g} against neurons{how}"
    return asked, line + "."


def _latency_texts(share: float, budget: Mapping[str, Any], heads: bool) -> tuple[str, str | None]:
    """:func:`_budget_texts` of a latency budget (the device and batch it was timed on)."""
    where = f"{budget.get('device', 'the device')}, batch {budget.get('batch_size', 1)}"
    asked = (f"{'attention heads included, ' if heads else ''}per second saved (each layer "
             f"timed at several widths on {where}), down to {100 * share:.3g} % of the "
             f"latency ({1 / share:.3g}x faster)")  # fmt: skip
    if budget.get("achieved") is None:
        return asked, None
    line = (f"Budget: {1 / share:.3g}x faster asked on {where}; {1 / budget['achieved']:.3g}x "
            "measured (the pruned shapes timed against the original in turns)")  # fmt: skip
    if budget.get("head_weight") is not None:
        line += f"; heads weighed {budget['head_weight']:g} against neurons"
    return asked, line + "."


def _heads_texts(report: Mapping[str, Any], section: Mapping[str, Any]) -> dict[str, Any]:
    """The card's lines on attention heads, when heads were pruned (``heads_summary``:
    ``blocks.0.attn: 3/6, ...``, kept / original); empty for an MLP-only model."""
    heads = dict(section.get("heads") or report.get("heads") or {})
    original = dict(report.get("original_heads") or {})
    if not heads:
        return {}
    before = sum(original.get(name, 0) for name in heads) if original else None
    after = sum(heads.values())
    return {
        "heads_summary": ", ".join(
            f"{name}: {kept}/{original[name]}" if name in original else f"{name}: {kept}"
            for name, kept in heads.items()
        ),
        "num_attentions": len(heads),
        "heads_before": before,  # unknown (None): not shown
        "heads_after": after,
        "heads_removed": before - after if before is not None else None,
    }


def _criterion_text(name: str) -> str:
    """What the criterion removes, from its registry entry (a criterion this process
    has not registered is named)."""
    from ..core.criteria import CRITERIA

    if name in CRITERIA:
        return CRITERIA[name].card
    return f"the neurons ranked lowest by the {name!r} criterion"


def _compensation_text(value: Any) -> str:
    """What the compensation did, from its registry entry (booleans as 0.1/0.2 wrote
    them; a compensation this process has not registered is named)."""
    from ..core.compensation import COMPENSATIONS
    from ..core.config import compensation
    from ..core.errors import ConfigError

    try:
        return COMPENSATIONS[compensation(value)].card
    except ConfigError:
        return f"The next layer was compensated with {value!r}."


def render_model_card(
    section: Mapping[str, Any],
    library_name: str,
    repo_id: str = "REPO_ID",
    auto_classes: Sequence[str] = ("AutoModelForImageClassification",),
    local: bool = False,
):
    """A :class:`huggingface_hub.ModelCard` for a model saved with ``section`` as its
    config's ``vbprune`` section (widths, pruning config, base model, report).

    ``auto_classes`` are the transformers auto classes the checkpoint's ``auto_map`` names
    (the card shows how to load each). With ``local`` the model is a folder on disk at
    ``repo_id`` (a path): the card loads it from there (timm: ``local-dir:``).

    Accuracy (``report["accuracy"]``: ``top1_before``, ``top1_after_pruning``,
    ``top1_after_distillation``, as known) becomes ``model-index`` eval results; a
    measured speedup (``section["speedup"] = {"value": 1.44, "device": "..."}``) is shown
    with its device.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    section = upgrade_section(section)
    pruning = dict(section.get("pruning") or {})
    report = dict(section.get("report") or {})
    params, macs = report.get("params", {}), report.get("macs", {})
    accuracy = report.get("accuracy", {})
    widths = dict(section.get("widths", {}))
    original = dict(report.get("original_widths", {}))
    base_model = section.get("base_model") or "unknown base model"
    base_id = base_model.split(":", 1)[-1] if base_model.startswith(("timm:", "hf:")) else None
    dataset = str(
        accuracy.get("dataset") or report.get("calibration", {}).get("dataset") or "unknown"
    )
    labels = {
        "top1_before": "original",
        "top1_after_pruning": "right after pruning",
        "top1_after_distillation": "after distillation",
    }
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=accuracy.get("split"),
            metric_type="accuracy",
            metric_name=f"top-1 accuracy ({label})",
            metric_value=round(float(accuracy[key]), 6),
        )
        for key, label in labels.items()
        if accuracy.get(key) is not None
    ]
    accuracy_rows = []
    if accuracy.get("top1_before") is not None:
        after = accuracy.get("top1_after_distillation", accuracy.get("top1_after_pruning"))
        accuracy_rows.append({
            "name": f"top-1 ({accuracy.get('split')})",
            "before": _percent(accuracy.get("top1_before")),
            "after": _percent(after) + (
                f" (right after pruning: {_percent(accuracy.get('top1_after_pruning'))})"
                if "top1_after_distillation" in accuracy else " (right after pruning)"
            ),
        })  # fmt: skip
    card_data = ModelCardData(
        library_name=library_name,
        base_model=base_id,
        tags=["vbprune", "pruning", "variance-based-pruning", "image-classification"],
        pipeline_tag="image-classification",
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    speedup = section.get("speedup") or {}
    total_before, total_after = sum(original.values()), sum(widths.values())
    ratio = pruning.get("ratio")
    heads = _heads_texts(report, section)
    asked, budget_line = _budget_texts(pruning, report.get("budget") or {}, bool(heads))
    pruned = f"{_pruned_percent(original, widths, ratio)} of MLP neurons"
    if heads.get("heads_removed") is not None:
        pruned += f" and {heads['heads_removed']} heads"
    pruned += " removed"
    if ratio is None and macs.get("before") and macs.get("after") is not None:
        kept = _percent(macs["after"] / macs["before"])
        pruned = f"{kept} of MACs kept" + (", heads pruned" if heads.get("heads_removed") else "")
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=_title(repo_id, base_model, pruned, local),
        repo_id=repo_id,
        timm_id=f"local-dir:{repo_id}" if local else f"hf-hub:{repo_id}",
        base_model=base_model,
        library_name=library_name,
        auto_classes=list(auto_classes),
        library_version=section.get("library_version", ""),
        ratio=ratio,
        asked=asked,
        budget_line=budget_line,
        **heads,
        scope=pruning.get("scope", "unknown"),
        criterion_text=_criterion_text(pruning.get("criterion", "variance")),
        compensation_text=_compensation_text(pruning.get("compensate", "mean")),
        pruned_percent=_pruned_percent(original, widths, ratio),
        params_before=_millions(params.get("before")),
        params_after=_millions(params.get("after")),
        macs_before=_giga(macs.get("before")),
        macs_after=_giga(macs.get("after")),
        input_size="x".join(str(v) for v in report.get("input_size", [])) or "one image",
        accuracy_rows=accuracy_rows,
        speedup=f"{speedup['value']:.2f}x" if speedup.get("value") else None,
        speedup_device=speedup.get("device", "device not recorded"),
        num_mlps=len(widths),
        widths_before=total_before or None,  # unknown: not shown
        widths_after=total_after,
        widths_summary=", ".join(f"{name}: {width}" for name, width in widths.items()),
    )


def write_model_card(folder: Path, repo_id: str, local: bool = False) -> None:
    """(Re)write ``folder/README.md`` from the ``vbprune`` section of its config
    (``local``: ``repo_id`` is the path the folder is saved at, not a Hub id).

    Raises:
        CheckpointError: if the folder's config is broken or has no ``vbprune`` section.
    """
    config = read_model_config(folder)
    section = config.get(SECTION)
    if section is None:
        raise CheckpointError(
            f"{folder} is not a vbprune model (no vbprune section in config.json)"
        )
    library = "timm" if is_timm_config(config) else "transformers"
    auto_classes = sorted(config.get("auto_map") or {})
    card = render_model_card(section, library, repo_id, auto_classes, local=local)
    card.save(str(folder / "README.md"))
