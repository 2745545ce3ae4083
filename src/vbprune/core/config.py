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
BUDGETS = ("ratio", "target_macs", "target_params", "target_latency")
# Defaults measured on the digits ViT (docs/benchmarks.md, "Heads and budgets"): the
# paper's criterion for a ratio of MLP neurons; with heads or a budget the one that
# measured best there, and the weight of heads against neurons tried first.
RATIO_CRITERION = "variance"
BUDGET_CRITERION = "fluctuation"  # with compensate="mean" or "none"
BUDGET_LS_CRITERION = "obs"  # with compensate="ls": the covariance is there
HEAD_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)
DEFAULT_HEAD_WEIGHT = 1.0
_COMPENSATION_ALIASES = {True: "mean", False: "none"}  # vbprune 0.1/0.2 wrote booleans


@dataclass(frozen=True)
class PruningConfig:
    """How to prune: which share of MLP neurons (or of MACs, of parameters) to remove,
    whether attention heads too, ranked how, compensated how.

    Frozen (hashable, safe to share between plans and results): derive variants with
    ``dataclasses.replace(config, ratio=0.3)``. A criterion left out is resolved when the
    config is made (:func:`default_criterion`) and then kept: a variant with heads, a
    budget or another compensation keeps it, so build that one afresh (or name the
    criterion) to get its own default.

    Example:
        >>> config = vbprune.PruningConfig(ratio=0.5, round_to=8)
        >>> vbprune.prune_model(model, stats, config=config)
        >>> vbprune.PruningConfig.from_dict(config.to_dict()) == config
        True

    Raises:
        ConfigError: (a ``ValueError``) naming the field and its allowed values.
        OptionTypeError: (a ``TypeError``) for a field of the wrong type.
    """

    ratio: float | None = field(
        default=None,
        metadata={
            "help": "fraction of MLP hidden neurons removed, in [0, 1) (with heads: "
            "the MACs that removes, taken from neurons and heads together)"
        },
    )
    scope: str = field(
        default="global",
        metadata={"help": "rank neurons over all MLPs together (global, the paper) or per MLP"},
    )
    min_keep: int = field(default=1, metadata={"help": "neurons every MLP keeps at least"})
    round_to: int = field(
        default=1, metadata={"help": "kept widths are multiples of N (total kept near target)"}
    )
    criterion: str | None = field(
        default=None,
        metadata={
            "help": "what ranks neurons and heads (lowest removed first): "
            + CRITERIA.help()
            + f"; default: {RATIO_CRITERION} for a ratio of MLP neurons; with heads or a "
            f"budget {BUDGET_LS_CRITERION} with compensate ls, else {BUDGET_CRITERION}"
        },
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
    target_macs: float | None = field(
        default=None,
        metadata={"help": "share of the dense model's MACs kept, in (0, 1] (instead of a ratio)"},
    )
    target_params: float | None = field(
        default=None,
        metadata={
            "help": "share of the dense model's parameters kept, in (0, 1] (instead of a ratio)"
        },
    )
    target_latency: float | None = field(
        default=None,
        metadata={
            "help": "share of the dense model's latency kept, in (0, 1], measured on the "
            "device the model is on (a speedup S is 1/S; instead of a ratio)"
        },
    )
    latency_batch: int | None = field(
        default=None,
        metadata={"help": "images per forward the latency budget is measured at (default 1)"},
    )
    heads: bool = field(
        default=False,
        metadata={"help": "also prune attention heads, ranked with the MLP neurons"},
    )
    head_weight: float | None = field(
        default=None,
        metadata={
            "help": "weight of a head's score against a neuron's (default: the one of "
            f"{', '.join(f'{w:g}' for w in HEAD_WEIGHTS)} whose plan keeps the "
            "calibration logits closest to the dense model's, KL, given images; "
            f"else {DEFAULT_HEAD_WEIGHT:g})"
        },
    )

    def __post_init__(self) -> None:
        given = [name for name in BUDGETS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one of ratio, target_macs, target_params, target_latency"
                + (f" (got {', '.join(given)})" if given else "")
            )
        for name in BUDGETS:
            value = getattr(self, name)
            if value is None:
                continue
            allowed = "[0, 1)" if name == "ratio" else "(0, 1]"
            if isinstance(value, bool) or not isinstance(value, Real):
                raise OptionTypeError(f"{name} must be a number in {allowed}, got {value!r}")
            inside = 0.0 <= value < 1.0 if name == "ratio" else 0.0 < value <= 1.0
            if not inside:  # also refuses NaN
                raise ConfigError(f"{name} must be in {allowed}, got {value!r}")
            object.__setattr__(self, name, float(value))
        batch = self.latency_batch
        if batch is not None:
            if isinstance(batch, bool) or not isinstance(batch, Integral) or batch < 1:
                raise ConfigError(f"latency_batch must be a positive integer, got {batch!r}")
            if self.target_latency is None:
                raise ConfigError("latency_batch is the batch of a latency budget: it needs "
                                  "target_latency")  # fmt: skip
            object.__setattr__(self, "latency_batch", int(batch))
        if not isinstance(self.heads, bool):
            raise OptionTypeError(f"heads must be True or False, got {self.heads!r}")
        weight = self.head_weight
        if weight is not None:
            if isinstance(weight, bool) or not isinstance(weight, Real):
                raise OptionTypeError(f"head_weight must be a positive number, got {weight!r}")
            if not weight > 0:
                raise ConfigError(f"head_weight must be positive, got {weight!r}")
            if not self.heads:
                raise ConfigError("head_weight weighs heads against neurons: it needs heads=True")
            object.__setattr__(self, "head_weight", float(weight))
        _check_choice("scope", self.scope, SCOPES)
        if self.scope == "layer" and self.ratio is None:
            raise ConfigError("scope layer removes a ratio per MLP: it takes ratio, not a budget")
        if self.scope == "layer" and self.heads:
            raise ConfigError("heads are ranked with the neurons of every MLP: use scope global")
        if self.criterion is not None:
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
        if self.criterion is None:  # the best measured default for what is asked
            object.__setattr__(self, "criterion", default_criterion(self, compensate))
        # plain Python values, so that configs compare, hash and serialise alike
        normal = {"min_keep": int(self.min_keep),
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

    @property
    def budget(self) -> tuple[str, float]:
        """``("ratio", 0.5)``, ``("target_macs", 0.3)``, ``("target_params", 0.4)`` or
        ``("target_latency", 0.66)``."""
        name = next(name for name in BUDGETS if getattr(self, name) is not None)
        return name, getattr(self, name)

    def describe(self) -> str:
        """``ratio 0.5`` / ``target_macs 0.3, heads``: what was asked, in a few words."""
        name, value = self.budget
        return f"{name} {value:g}" + (", heads" if self.heads else "")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict (what checkpoints and reports record).

        Options of heads and budgets are left out while unused, so a plain ratio's config
        reads the same as before they existed (and older vbprune versions read it)."""
        data = asdict(self)
        for name, unused in _UNUSED.items():
            if data[name] == unused:
                del data[name]
        return data

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


def default_criterion(config: PruningConfig, compensate: str) -> str:
    """The criterion a config without one gets: the paper's variance for a ratio of MLP
    neurons; with heads or a budget, what measured best on the digits ViT (OBS with
    least squares, fluctuation otherwise; docs/benchmarks.md)."""
    if config.ratio is not None and not config.heads:
        return RATIO_CRITERION
    return BUDGET_LS_CRITERION if compensate == "ls" else BUDGET_CRITERION


# options added with heads and budgets (0.5) and latency budgets (0.6), and their values
# when unused
_UNUSED = {"ratio": None, "target_macs": None, "target_params": None, "heads": False,
           "head_weight": None, "target_latency": None, "latency_batch": None}  # fmt: skip


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
        if not any(name in given for name in BUDGETS):
            raise ConfigError(
                "give a ratio (or target_macs, target_params, target_latency), or "
                "config=PruningConfig(...)"
            )
        return PruningConfig(**given)
    if not isinstance(config, PruningConfig):
        raise OptionTypeError(f"config must be a PruningConfig, got {type(config).__name__}")
    if given:
        raise ConfigError(
            f"give the options either in config or as arguments, not both (got {sorted(given)})"
        )
    return config
