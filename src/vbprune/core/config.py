"""PruningConfig: every option of one pruning, validated once (standard library only).

The config travels as one object from the command line to :func:`vbprune.prune_model`,
into the pruning plan, the saved checkpoint's metadata and the prune report, so a pruned
model always says how it was made. It imports nothing heavy: the command line builds
its ``--help`` from the field metadata without loading torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from typing import Any

from .compensation import COMPENSATIONS
from .criteria import CRITERIA
from .errors import ConfigError, OptionTypeError

SCOPES = ("global", "layer")
_COMPENSATION_ALIASES = {True: "mean", False: "none"}  # vbprune 0.1/0.2 wrote booleans


@dataclass(frozen=True)
class PruningConfig:
    """How to prune: which share of MLP neurons to remove, ranked how, compensated how.

    Frozen (hashable, safe to share between plans and results): derive variants with
    ``dataclasses.replace(config, ratio=0.3)``.

    Example:
        >>> config = vbprune.PruningConfig(ratio=0.5, round_to=8)
        >>> vbprune.prune_model(model, stats, config=config)
        >>> vbprune.PruningConfig.from_dict(config.to_dict()) == config
        True

    Raises:
        ConfigError: (a ``ValueError``) naming the field and its allowed values.
        OptionTypeError: (a ``TypeError``) for a field of the wrong type.
    """

    ratio: float = field(metadata={"help": "fraction of MLP hidden neurons removed, in [0, 1)"})
    scope: str = field(
        default="global",
        metadata={"help": "rank neurons over all MLPs together (global, the paper) or per MLP"},
    )
    min_keep: int = field(default=1, metadata={"help": "neurons every MLP keeps at least"})
    round_to: int = field(
        default=1, metadata={"help": "kept widths are multiples of N (total kept near target)"}
    )
    criterion: str = field(
        default="variance",
        metadata={"help": "what ranks neurons (lowest removed first): " + CRITERIA.help()},
    )
    seed: int = field(default=0, metadata={"help": "seed of the random criterion"})
    compensate: str = field(
        default="mean",
        metadata={
            "help": "what replaces the removed neurons: "
            + COMPENSATIONS.help()
            + "; True/False mean mean/none"
        },
    )

    def __post_init__(self) -> None:
        ratio = self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, Real):
            raise OptionTypeError(f"ratio must be a number in [0, 1), got {ratio!r}")
        if not (0.0 <= float(ratio) < 1.0):  # also refuses NaN
            raise ConfigError(f"ratio must be in [0, 1), got {ratio!r}")
        _check_choice("scope", self.scope, SCOPES)
        CRITERIA[self.criterion]  # the lookup's ConfigError names the registered ones
        for name in ("min_keep", "round_to"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, Integral):
            raise OptionTypeError(f"seed must be an integer, got {self.seed!r}")
        compensate = self.compensate
        if not isinstance(compensate, (bool, str)):
            raise OptionTypeError(
                f"compensate must be one of {', '.join(COMPENSATIONS)} (or True/False), "
                f"got {compensate!r}"
            )
        compensate = compensation(compensate)
        # plain Python values, so that configs compare, hash and serialise alike
        normal = {"ratio": float(ratio), "min_keep": int(self.min_keep),
                  "round_to": int(self.round_to), "seed": int(self.seed),
                  "compensate": compensate}  # fmt: skip
        for name, value in normal.items():
            object.__setattr__(self, name, value)  # frozen: the dataclass way to normalise

    @property
    def needs_covariance(self) -> bool:
        """Whether the criterion or the compensation reads the covariance (``"obs"``,
        ``"ls"``): statistics from ``VarianceCalibrator(model, covariance=True)``."""
        return self.covariance_need() is not None

    def covariance_need(self, *options: str) -> str | None:
        """The option that needs the covariance (``"criterion"`` or ``"compensate"``;
        only among ``options`` when given), for messages; ``None`` if none does."""
        for name, registry in (("criterion", CRITERIA), ("compensate", COMPENSATIONS)):
            if (not options or name in options) and registry[getattr(self, name)].needs_covariance:
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict (what checkpoints and reports record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningConfig:
        """Inverse of :meth:`to_dict`; keys this version does not know are warned of and
        ignored (a config written by a newer vbprune still loads)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            warnings.warn(
                f"ignoring unknown PruningConfig keys {unknown} (written by a newer vbprune?)",
                stacklevel=2,
            )
        return cls(**{k: v for k, v in data.items() if k in known})


def compensation(value: bool | str | None, default: str = "mean") -> str:
    """The registered compensation a ``compensate`` value names (``True``/``False`` are
    ``"mean"``/``"none"``, as vbprune 0.1/0.2 wrote them; ``None`` is ``default``).

    Raises:
        ConfigError: for a name that is not registered.
    """
    if value is None:
        return default
    value = _COMPENSATION_ALIASES[value] if isinstance(value, bool) else value
    return COMPENSATIONS[value].name


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def resolve_config(config: PruningConfig | None = None, **options: Any) -> PruningConfig:
    """The config of a call that takes either ``config=`` or the options as keywords.

    Options left at ``None`` are not given; the rest build a :class:`PruningConfig`
    (which fills in its defaults and validates).

    Raises:
        ConfigError: if both a config and options are given, or neither gives a ratio.
        OptionTypeError: if ``config`` is not a :class:`PruningConfig`.
    """
    given = {name: value for name, value in options.items() if value is not None}
    if config is None:
        if "ratio" not in given:
            raise ConfigError("give a ratio, or config=PruningConfig(ratio=...)")
        return PruningConfig(**given)
    if not isinstance(config, PruningConfig):
        raise OptionTypeError(f"config must be a PruningConfig, got {type(config).__name__}")
    if given:
        raise ConfigError(
            f"give the options either in config or as arguments, not both (got {sorted(given)})"
        )
    return config
