"""Statistics checked against a model's sites, in one place (torch only).

Every entry point that reads statistics (``prune_model``, ``plan_pruning``,
``apply_plan``, ``score_neurons``, ``vbprune prune --stats``) calls
:func:`check_statistics` before anything is modified.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from .errors import StatisticsError
from .statistics import NeuronStats, problem_of

COVARIANCE_HINT = (
    "calibrate with VarianceCalibrator(model, covariance=True) (or `vbprune calibrate "
    "--covariance`)"
)


def check_statistics(
    stats: Mapping[str, NeuronStats] | None,
    widths: Mapping[str, int] | None = None,
    covariance: str | None = None,
) -> dict[str, NeuronStats]:
    """The statistics of every site, checked; in the order of ``widths`` when given.

    Args:
        stats: Statistics by site name.
        widths: The model's sites and their widths: each must have statistics of that
            width (statistics of other sites are ignored with a warning).
        covariance: What needs the covariance (``'compensate="ls"'``, ``--criterion
            obs``), if anything: every site must then have a finite one.

    Raises:
        StatisticsError: (a ``ValueError``) naming the site: statistics missing, of
            another width, malformed, of fewer than two samples, not finite, or without
            the covariance that ``covariance`` needs.
    """
    if stats is None:
        how = COVARIANCE_HINT if covariance else "from VarianceCalibrator(model).run(loader)"
        raise StatisticsError(
            f"{covariance or 'this'} needs the calibration statistics: pass stats=... ({how})"
        )
    names = list(widths) if widths is not None else list(stats)
    missing = [name for name in names if name not in stats]
    if missing:
        raise StatisticsError(
            f"statistics have no entry for {len(missing)} MLP site(s) of this model, e.g. "
            f"{missing[0]!r}; were they computed on another model?"
        )
    if widths is not None:
        extra = sorted(set(stats) - set(widths))
        if extra:
            warnings.warn(f"ignoring statistics of sites not in the model: {extra}", stacklevel=3)
    checked = {}
    for name in names:
        entry = stats[name]
        shapes = {tuple(entry.mean.shape), tuple(entry.m2.shape)}
        if widths is not None and shapes != {(widths[name],)}:
            found = " and ".join(str(shape) for shape in sorted(shapes))
            raise StatisticsError(
                f"statistics of {name} have shape {found}, the model has {widths[name]} neurons"
            )
        problem = problem_of(entry)
        if problem:
            raise StatisticsError(f"statistics of {name} {problem}")
        if entry.count < 2:
            raise StatisticsError(
                f"statistics of {name} hold {entry.count} sample(s); need at least 2"
            )
        if covariance and entry.c2 is None:
            raise StatisticsError(
                f"{covariance} needs the covariance of every MLP; {name} has none: "
                + COVARIANCE_HINT
            )
        checked[name] = entry
    return checked
