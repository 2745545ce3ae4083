"""Accuracy metrics shipped with vbprune, as ``evaluate.Metric``s (no Hub download).

``evaluate.load("accuracy")`` needs the Hub; these work offline and combine with
``evaluate.combine``::

    metrics = evaluate.combine([TopKAccuracy(k=1), TopKAccuracy(k=5)])
    metrics.compute(predictions=topk_indices, references=labels)
"""

from __future__ import annotations

import datasets
import evaluate

from ..core.errors import ConfigError, DatasetError

_CITATION = ""  # standard top-k accuracy; nothing to cite


class TopKAccuracy(evaluate.Metric):
    """Fraction of samples whose label is among the first ``k`` predicted classes.

    ``predictions`` are lists of class indices ordered by decreasing score (at least
    ``k`` of them, e.g. ``logits.topk(5).indices``); ``references`` are class indices.
    The result is ``{"top{k}_accuracy": value}``.
    """

    def __init__(self, k: int = 1, **kwargs):
        if k < 1:
            raise ConfigError(f"k must be a positive integer, got {k}")
        self.k = k
        super().__init__(config_name=f"top{k}", **kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=f"Top-{self.k} accuracy.",
            citation=_CITATION,
            inputs_description="predictions: ranked class indices per sample; "
            "references: the true class index",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        if not references:
            raise DatasetError("no sample to compute accuracy on")
        short = [p for p in predictions if len(p) < self.k]
        if short:
            raise ConfigError(f"top-{self.k} accuracy needs {self.k} ranked classes per sample")
        hits = sum(ref in pred[: self.k] for pred, ref in zip(predictions, references))
        return {f"top{self.k}_accuracy": hits / len(references)}
