"""Measuring models: accuracy over sharded loaders (``accuracy``), offline ``evaluate``
metrics (``metrics``), MACs and parameters (``counting``), latency (``latency``) and the
accuracy-vs-size sweep (``sweep``).

``from vbprune.evaluation import evaluate_model`` (vbprune 0.1's path) keeps working; the
names load on first use, so ``vbprune.evaluation.counting`` does not import ``evaluate``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_model": "accuracy",
    "top1_accuracy": "accuracy",
    "measure_latency": "latency",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
