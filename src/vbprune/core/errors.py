"""The errors vbprune raises on purpose: bad input, not bugs (standard library only).

Every one derives from :class:`VBPruneError`, so ``except vbprune.VBPruneError`` catches
what a user can fix, while a real bug still surfaces as its own exception with its
traceback (the ``vbprune`` command prints a ``VBPruneError`` as one line). Each also keeps
the built-in parent that describes it (``ValueError``, ``FileNotFoundError``, ...), so code
written against those keeps working.
"""

from __future__ import annotations


class VBPruneError(Exception):
    """Base of every error vbprune raises for input it cannot use."""


class ConfigError(VBPruneError, ValueError):
    """A pruning, calibration or training option is out of range (names the option)."""


class OptionTypeError(VBPruneError, TypeError):
    """An option or input has the wrong type (names what was expected)."""


class UnsupportedModelError(VBPruneError, ValueError):
    """vbprune does not know where this model's MLPs are (lists what is supported)."""


class StatisticsError(VBPruneError, ValueError):
    """Calibration statistics are malformed, too few, or of another model."""


class NonFiniteActivationError(VBPruneError, FloatingPointError):
    """A calibration activation is NaN or infinite (names the MLP and the batch)."""


class PlanError(VBPruneError, ValueError):
    """A pruning plan does not fit the model it is applied to."""


class CheckpointError(VBPruneError, ValueError):
    """A saved model's config, recorded widths and weights disagree, or cannot be saved."""


class DatasetError(VBPruneError, ValueError):
    """A dataset split is empty or lacks the image or label column."""


class MissingInputError(VBPruneError, FileNotFoundError):
    """A model folder, dataset, statistics file or checkpoint does not exist."""


class OutputExistsError(VBPruneError, FileExistsError):
    """An output path holds something that may not be replaced (pass overwrite)."""


class OutputNotWritableError(VBPruneError, PermissionError):
    """An output location cannot be written (read-only, no permission, no space)."""


class ProcessCountError(VBPruneError, RuntimeError):
    """The launcher started processes that do not form one distributed run."""


class HubError(VBPruneError, OSError):
    """The Hugging Face Hub refused a request (a bad token, no access, server trouble)."""


class MissingDependencyError(VBPruneError, ImportError):
    """An optional dependency is not installed (names it and the extra that installs it)."""
