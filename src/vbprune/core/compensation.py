"""Compensations: name -> the function that makes up for the removed channels in fc2.

A compensation takes the site (:class:`~vbprune.core.units.SiteUnits`: its statistics and
fc2's weight) and what is removed (:class:`~vbprune.core.units.Removal`: kept and removed
channels, the removed ones' means) and returns a :class:`~vbprune.core.units.Correction`:
what to add to fc2's kept columns and to its output before the channels are sliced
away. It works on channels, so a neuron and a group of channels (a head) are alike.
:class:`~vbprune.PruningConfig`, the command line, the sweep, the demo and model cards
read this table; a new compensation is one registered function.

Torch is imported when a compensation runs, not here: ``vbprune --help`` lists the names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    from .units import Correction, Removal, SiteUnits

COMPENSATIONS: Registry = Registry("compensate")


@COMPENSATIONS.register(
    "mean",
    label="mean fold",
    help="the removed neurons' means folded into the next layer's bias (the paper)",
    card="Their mean activations are folded into the next layer's bias (the paper's "
    "mean-shift compensation).",
)
def mean(units: SiteUnits, removal: Removal) -> Correction:
    """``b2 += W2[:, P] @ mean[P]``, in float64: what the removed channels added on average."""
    from .units import Correction

    w2 = units.fc2_weight.detach()
    shift = w2[:, removal.pruned.to(w2.device)].double() @ removal.mean.to(w2.device).double()
    return Correction(bias=shift)


@COMPENSATIONS.register(
    "ls",
    label="least squares",
    help="least squares from the kept neurons (needs statistics with covariance)",
    card="The next layer was refitted by least squares to predict the removed neurons "
    "from the kept ones (vbprune's least-squares compensation; with uncorrelated neurons "
    "it is VBP's mean fold).",
    needs_covariance=True,
)
def least_squares(units: SiteUnits, removal: Removal) -> Correction:
    """``A = S_PK (S_KK + lambda I)^-1``: ``W2[:, K] += W2[:, P] A`` and
    ``b2 += W2[:, P] (m_P - A m_K)``
    (:func:`~vbprune.core.least_squares.least_squares_correction`)."""
    from .least_squares import least_squares_correction
    from .units import Correction

    moments, w2 = units.moments(), units.fc2_weight.detach()
    delta_w, delta_b = least_squares_correction(
        w2, removal.keep.to(w2.device), removal.pruned.to(w2.device),
        moments.mean.to(w2.device), moments.cov.to(w2.device),
    )  # fmt: skip
    return Correction(weight=delta_w, bias=delta_b)


@COMPENSATIONS.register(
    "none",
    label="no compensation",
    help="the neurons are only dropped (the paper's ablation)",
    card="Their mean activations were NOT folded into the next layer's bias (an ablation "
    "of the method).",
)
def none(units: SiteUnits, removal: Removal) -> Correction:
    """Nothing: the ablation."""
    from .units import Correction

    return Correction()
