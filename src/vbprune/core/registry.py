"""A named table of functions: how criteria and compensations are found (standard library).

``criteria.CRITERIA`` and ``compensation.COMPENSATIONS`` are two of these. Each entry
holds the function and what the rest of vbprune reads about it (the command line's
help, the label of a table or a plot, the sentence of a model card, whether it needs the
covariance), so adding one is one decorated function::

    from vbprune.core.criteria import CRITERIA

    @CRITERIA.register("activation-energy", label="mean square",
                       help="mean square activation (no weights needed)")
    def activation_energy(units):
        return units.per_unit(units.stats.var + units.stats.mean.square())

This module imports no torch, so ``vbprune --help`` lists the names without loading it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[F]):
    """One function of a :class:`Registry` and what the rest of vbprune reads about it.

    Attributes:
        name: The name users pass (``criterion="variance"``, ``--compensate ls``).
        function: The function itself (signature: the registry's ``kind``).
        label: Short words for tables and plots ("mean fold").
        help: One line for ``--help`` and docstrings.
        card: A sentence for the model card of a model pruned with it.
        needs_covariance: It reads the activations' covariance (statistics from
            ``VarianceCalibrator(model, covariance=True)``).
        needs_weights: It reads the model's weights (a criterion that the statistics
            alone cannot compute: ``plan_pruning`` then needs ``scores``).
        compensation: For a criterion, the compensation it is made for (``None``: any).
    """

    name: str
    function: F
    label: str
    help: str
    card: str
    needs_covariance: bool = False
    needs_weights: bool = False
    compensation: str | None = None


class Registry(Mapping[str, "Entry[F]"]):
    """Name -> :class:`Entry`, in registration order (the order help texts list them).

    Args:
        kind: What an entry is ("criterion", "compensation"), for messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def register(
        self,
        name: str,
        *,
        label: str,
        help: str,
        card: str | None = None,
        needs_covariance: bool = False,
        needs_weights: bool = False,
        compensation: str | None = None,
        replace: bool = False,
    ) -> Callable[[F], F]:
        """A decorator that adds the function under ``name`` (see :class:`Entry`).

        Raises:
            ConfigError: if ``name`` is taken (unless ``replace``) or not a plain word.
        """
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{self.kind} name must be letters, digits, - or _: {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered (pass replace=True)")

        def add(function: F) -> F:
            self._entries[name] = Entry(
                name, function, label, help, card or help, needs_covariance, needs_weights,
                compensation,
            )  # fmt: skip
            return function

        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and experiments)."""
        del self._entries[self[name].name]  # an unknown name: the lookup's ConfigError

    def __getitem__(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable value
            raise ConfigError(
                f"{self.kind} must be one of {', '.join(self._entries)}; got {name!r}"
            ) from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._entries)})"

    def help(self) -> str:
        """``name: help`` of every entry, joined for a ``--help`` text."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())
