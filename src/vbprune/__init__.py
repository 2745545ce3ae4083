"""vbprune: Variance-Based Pruning of trained timm and Hugging Face vision models.

The pipeline is statistics -> selection -> fold-and-shrink::

    import vbprune
    stats = vbprune.VarianceCalibrator(model).run(loader, max_batches=100)
    result = vbprune.prune_model(model, stats, config=vbprune.PruningConfig(ratio=0.5))

Names load on first use (PEP 562): ``import vbprune`` itself imports neither torch nor
transformers, so the command line starts at once and ``vbprune.DistillationTrainer``
costs transformers' Trainer machinery only when it is used.

The package by role: ``core`` (the maths, torch only), ``architectures`` (where each
framework keeps its MLPs), ``calibration`` and ``pruning`` (the method on a model),
``io`` (checkpoints, Hub, cards), ``data``, ``training``, ``evaluation``, ``commands``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _timm_hook
from ._version import __version__

# pruned timm checkpoints load with timm.create_model: the entry is registered with timm
# now if timm is loaded, else as soon as it is (timm itself is not imported here)
_timm_hook.install()

# public name -> module that defines it
_EXPORTS = {
    "ActivationStats": "vbprune.core.statistics",
    "NeuronStats": "vbprune.core.statistics",
    "PruningConfig": "vbprune.core.config",
    "PruningPlan": "vbprune.core.selection",
    "SitePlan": "vbprune.core.selection",
    "plan_pruning": "vbprune.core.selection",
    "select_neurons": "vbprune.core.selection",
    "VBPruneError": "vbprune.core.errors",
    "CheckpointError": "vbprune.core.errors",
    "ConfigError": "vbprune.core.errors",
    "DatasetError": "vbprune.core.errors",
    "HubError": "vbprune.core.errors",
    "MissingDependencyError": "vbprune.core.errors",
    "MissingInputError": "vbprune.core.errors",
    "NonFiniteActivationError": "vbprune.core.errors",
    "OptionTypeError": "vbprune.core.errors",
    "OutputExistsError": "vbprune.core.errors",
    "OutputNotWritableError": "vbprune.core.errors",
    "PlanError": "vbprune.core.errors",
    "ProcessCountError": "vbprune.core.errors",
    "StatisticsError": "vbprune.core.errors",
    "UnsupportedModelError": "vbprune.core.errors",
    "SUPPORTED_FAMILIES": "vbprune.architectures",
    "MLPSite": "vbprune.architectures",
    "AttentionSite": "vbprune.architectures",
    "attention_heads": "vbprune.architectures",
    "find_attention_sites": "vbprune.architectures",
    "find_mlp_sites": "vbprune.architectures",
    "model_backend": "vbprune.architectures",
    "VarianceCalibrator": "vbprune.calibration",
    "PruningResult": "vbprune.pruning",
    "apply_plan": "vbprune.pruning",
    "magnitude_scores": "vbprune.pruning",
    "obs_scores": "vbprune.pruning",
    "prune_model": "vbprune.pruning",
    "score_neurons": "vbprune.pruning",
    "CRITERIA": "vbprune.core.criteria",
    "COMPENSATIONS": "vbprune.core.compensation",
    "LatencyTable": "vbprune.planning.latency",
    "latency_table": "vbprune.planning.latency",
    "count_macs": "vbprune.evaluation.counting",
    "count_params": "vbprune.evaluation.counting",
    "from_pretrained": "vbprune.io.checkpoint",
    "save_pretrained": "vbprune.io.checkpoint",
    "push_folder": "vbprune.io.hub",
    "push_to_hub": "vbprune.io.hub",
    "DistillationTrainer": "vbprune.training.trainer",
    "DistillationTrainingArguments": "vbprune.training.trainer",
}

__all__ = [  # the names of _EXPORTS, spelled out for tools
    "COMPENSATIONS",
    "CRITERIA",
    "SUPPORTED_FAMILIES",
    "ActivationStats",
    "AttentionSite",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "HubError",
    "LatencyTable",
    "MLPSite",
    "MissingDependencyError",
    "MissingInputError",
    "NeuronStats",
    "NonFiniteActivationError",
    "OptionTypeError",
    "OutputExistsError",
    "OutputNotWritableError",
    "PlanError",
    "ProcessCountError",
    "PruningConfig",
    "PruningPlan",
    "PruningResult",
    "SitePlan",
    "StatisticsError",
    "UnsupportedModelError",
    "VBPruneError",
    "VarianceCalibrator",
    "__version__",
    "apply_plan",
    "attention_heads",
    "count_macs",
    "count_params",
    "find_attention_sites",
    "find_mlp_sites",
    "from_pretrained",
    "latency_table",
    "magnitude_scores",
    "model_backend",
    "obs_scores",
    "plan_pruning",
    "prune_model",
    "push_folder",
    "push_to_hub",
    "save_pretrained",
    "score_neurons",
    "select_neurons",
]

# subpackages and modules reachable as attributes (``vbprune.data.make_loader``) on first use
_SUBMODULES = {"architectures", "calibration", "cli", "commands", "core", "data", "evaluation",
               "hf_remote", "io", "planning", "pruning", "training"}  # fmt: skip

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports
    from .architectures import (
        SUPPORTED_FAMILIES,
        AttentionSite,
        MLPSite,
        attention_heads,
        find_attention_sites,
        find_mlp_sites,
        model_backend,
    )
    from .calibration import VarianceCalibrator
    from .core.compensation import COMPENSATIONS
    from .core.config import PruningConfig
    from .core.criteria import CRITERIA
    from .core.errors import (
        CheckpointError,
        ConfigError,
        DatasetError,
        HubError,
        MissingDependencyError,
        MissingInputError,
        NonFiniteActivationError,
        OptionTypeError,
        OutputExistsError,
        OutputNotWritableError,
        PlanError,
        ProcessCountError,
        StatisticsError,
        UnsupportedModelError,
        VBPruneError,
    )
    from .core.selection import PruningPlan, SitePlan, plan_pruning, select_neurons
    from .core.statistics import ActivationStats, NeuronStats
    from .evaluation.counting import count_macs, count_params
    from .io.checkpoint import from_pretrained, save_pretrained
    from .io.hub import push_folder, push_to_hub
    from .planning.latency import LatencyTable, latency_table
    from .pruning import (
        PruningResult,
        apply_plan,
        magnitude_scores,
        obs_scores,
        prune_model,
        score_neurons,
    )
    from .training.trainer import DistillationTrainer, DistillationTrainingArguments


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})
