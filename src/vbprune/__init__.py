"""vbprune: Variance-Based Pruning of trained timm and Hugging Face vision models.

The pipeline is statistics -> selection -> fold-and-shrink::

    import vbprune
    stats = vbprune.VarianceCalibrator(model).run(loader, max_batches=100)
    result = vbprune.prune_model(model, stats, ratio=0.5)
"""

from .architectures import (
    SUPPORTED_FAMILIES,
    MLPSite,
    UnsupportedModelError,
    find_mlp_sites,
)
from .calibration import VarianceCalibrator
from .checkpoint import from_pretrained, register_auto_classes, save_pretrained
from .counting import count_macs, count_params
from .hub import push_folder, push_to_hub
from .pruning import PruningResult, apply_plan, magnitude_scores, prune_model
from .selection import PruningPlan, SitePlan, plan_pruning, select_neurons
from .statistics import ActivationStats, NeuronStats

__version__ = "0.1.0"

register_auto_classes()  # AutoModelForImageClassification loads pruned models by name

__all__ = [
    "SUPPORTED_FAMILIES",
    "ActivationStats",
    "MLPSite",
    "NeuronStats",
    "PruningPlan",
    "PruningResult",
    "SitePlan",
    "UnsupportedModelError",
    "VarianceCalibrator",
    "__version__",
    "apply_plan",
    "count_macs",
    "count_params",
    "find_mlp_sites",
    "from_pretrained",
    "magnitude_scores",
    "plan_pruning",
    "prune_model",
    "push_folder",
    "push_to_hub",
    "save_pretrained",
    "select_neurons",
]
