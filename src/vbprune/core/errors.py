"""The errors vbprune raises on purpose: bad input, not bugs (standard library only).

Every one derives from :class:`VBPruneError`, so ``except vbprune.VBPruneError`` catches
what a user can fix, while a real bug still surfaces as its own exception with its
traceback (the ``vbprune`` command prints a ``VBPruneError`` as one line). Each also keeps
the built-in parent that describes it (``ValueError``, ``FileNotFoundError``, ...), so code
written against those keeps working.
"""

from __future__ import annotations

import errno


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


NOTHING_WRITTEN = "nothing was written (free space or write elsewhere)"


class OutputNotWritableError(VBPruneError, PermissionError):
    """An output location cannot be written (read-only, no permission, no space).

    ``path`` and ``reason``, where known, say which file or folder and why (a full disk),
    so that a write nested in another output's is reported as that output's."""

    def __init__(self, message: str, path: object = None, reason: str | None = None):
        super().__init__(message)
        self.path, self.reason = path, reason

    def __reduce__(self):  # pickled between processes (DataLoader workers) with its fields
        return (type(self), (str(self), self.path, self.reason))

    @classmethod
    def full_disk(cls, path: object, reason: str, after: str | None = NOTHING_WRITTEN):
        """``cannot write PATH: REASON; AFTER``: a write that found the disk full."""
        return cls(f"cannot write {path}: {reason}" + (f"; {after}" if after else ""),
                   path, reason)  # fmt: skip


class ProcessCountError(VBPruneError, RuntimeError):
    """The launcher started processes that do not form one distributed run."""


class HubError(VBPruneError, OSError):
    """The Hugging Face Hub refused a request (a bad token, no access, server trouble)."""


class MissingDependencyError(VBPruneError, ImportError):
    """An optional dependency is not installed (names it and the extra that installs it)."""


def error_line(error: BaseException) -> str:
    """What the ``vbprune`` command prints of ``error``: its message, or, for an error
    torch's DataLoader re-raised from a worker process (same class, message ``Caught X
    in DataLoader worker process N.`` plus the worker's traceback), the original
    message the worker raised."""
    message = str(error)
    if not message.startswith("Caught ") or "\nOriginal Traceback" not in message:
        return message
    # the traceback ends with "<module>.<Class>: <original message>" (possibly several
    # lines: the message's own); take what follows the class name
    name = type(error).__name__
    tail = message.rsplit("Traceback (most recent call last):", 1)[-1]
    for marker in (f".{name}: ", f"{name}: "):
        if marker in tail:
            return tail.split(marker, 1)[1].strip()
    return message.splitlines()[0]


# no space left, file too large (a size limit), disk quota exceeded
_FULL = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large",
         errno.EDQUOT: "disk quota exceeded"}  # fmt: skip


def out_of_space(error: BaseException) -> str | None:
    """Why writing failed when ``error`` says the disk is full or a file-size limit was
    hit (an ``OSError``, or safetensors' error that carries the OS error's text and
    number), or was caused by such an error (an inner write's), else ``None``."""
    for link in _chain(error):  # the error, or what caused it
        if isinstance(link, OutputNotWritableError) and link.reason:
            return link.reason
        if isinstance(link, OSError) and link.errno in _FULL:
            return _FULL[link.errno]
        text = str(link)
        for code, reason in _FULL.items():  # safetensors: "(os error 28)" or "code: 28"
            if f"os error {code})" in text or f"code: {code}," in text:
                return reason
        if "PytorchStreamWriter failed writing file" in text or "file write failed" in text:
            return "the disk is full or a file-size limit was hit"  # torch.save: no errno
    return None


def written_file(error: BaseException | None) -> str | None:
    """The file an ``OSError`` in ``error``'s chain was writing, when it says."""
    for link in _chain(error):
        if isinstance(link, OutputNotWritableError) and link.path is not None:
            return str(link.path)
        if isinstance(link, OSError) and link.filename:
            return str(link.filename)
    return None


def _chain(error: BaseException | None):
    """``error``, then what caused it (``raise ... from``, or raised while handling it)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
