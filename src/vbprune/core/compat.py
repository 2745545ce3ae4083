"""Old names kept working for a while: read-only aliases that warn (standard library only)."""

from __future__ import annotations

import operator
import warnings
from typing import Any


class RenamedAttribute:
    """A class attribute that reads another one and warns that it was renamed.

    ``new_name`` may be a dotted path (``"config.ratio"``) for an attribute that moved.

    Example:
        >>> class Result:
        ...     widths = {}
        ...     hidden_sizes = RenamedAttribute("widths")
    """

    def __init__(self, new_name: str):
        self.new_name = new_name
        self.old_name = "?"
        self._get = operator.attrgetter(new_name)

    def __set_name__(self, owner: type, name: str) -> None:
        self.old_name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        warnings.warn(
            f"{type(instance).__name__}.{self.old_name} is renamed {self.new_name}",
            FutureWarning,
            stacklevel=2,
        )
        return self._get(instance)
