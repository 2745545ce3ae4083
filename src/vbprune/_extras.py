"""Optional dependencies, imported where a feature needs them (standard library only).

``require("sklearn.datasets", "demo", "vbprune demo")`` returns the module, or raises
:class:`~vbprune.core.errors.MissingDependencyError`, whose one line names the distribution
to install and the extra that installs it:
``vbprune demo needs scikit-learn: pip install "vbprune[demo]"``. Private: not API.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .core.errors import MissingDependencyError

# import name -> distribution name, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "Pillow"}


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import and return ``module``, which ``pip install "vbprune[EXTRA]"`` installs.

    Args:
        module: The module to import, e.g. ``"sklearn.datasets"``.
        extra: The vbprune extra that installs it, e.g. ``"demo"``.
        feature: What needs it, as the message names it, e.g. ``"vbprune demo"``.

    Raises:
        MissingDependencyError: if ``module`` (or a package above it) is not installed. A
            module that is installed but fails to import raises its own error unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if not (module == missing or module.startswith(missing + ".")):
            raise  # the module is there but something it imports is missing: a broken install
        top = module.split(".")[0]
        name = DISTRIBUTIONS.get(top, top)
        raise MissingDependencyError(
            f'{feature} needs {name}: pip install "vbprune[{extra}]"'
        ) from error
