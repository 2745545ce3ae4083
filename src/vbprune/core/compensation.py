"""Least-squares compensation: what fc2 should do without the removed neurons (torch only).

VBP replaces every removed neuron by its mean. Kept and removed neurons of one MLP are
correlated, so fc2 can do better: predict the removed activations from the kept ones.
With kept set K, removed set P, calibration means m and covariance S,

    A = S_PK (S_KK + lambda I)^-1,   W2[:, K] += W2[:, P] A,   b2 += W2[:, P] (m_P - A m_K).

This minimises the expected squared error of fc2's output over the calibration data
(the ridge term aside). With uncorrelated neurons A = 0 and it is exactly the mean fold;
a constant neuron has zero covariance, so it is folded exactly as well.
"""

from __future__ import annotations

import torch
from torch import Tensor

# lambda = DAMPING * mean(diag(S_KK)): keeps the solve well posed when kept neurons are
# (nearly) collinear or dead (zero variance), small enough to leave the fit unchanged
# otherwise.
DAMPING = 1e-4


def least_squares_correction(
    w2: Tensor, keep: Tensor, pruned: Tensor, mean: Tensor, cov: Tensor, damping: float = DAMPING
) -> tuple[Tensor, Tensor]:
    """The change of fc2's kept columns and of its bias that compensates the removal.

    Args:
        w2: ``(out, H)`` weight of fc2 before pruning.
        keep: ``(K,)`` indices of the kept neurons.
        pruned: ``(P,)`` indices of the removed neurons.
        mean: ``(H,)`` calibration means of the hidden activations.
        cov: ``(H, H)`` their calibration covariance.
        damping: Ridge term relative to the mean variance of the kept neurons.

    Returns:
        ``(delta_w, delta_b)``: ``(out, K)`` to add to ``W2[:, keep]`` and ``(out,)`` to add
        to fc2's output (its bias), both float64.
    """
    cov = cov.double()
    mean = mean.double()
    w2 = w2.double()
    s_kk = cov[keep][:, keep]
    s_kp = cov[keep][:, pruned]
    scale = s_kk.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
    ridge = damping * scale * torch.eye(len(keep), dtype=torch.float64, device=cov.device)
    a_t = torch.linalg.solve(s_kk + ridge, s_kp)  # (K, P) = A^T
    w_p = w2[:, pruned]  # (out, P)
    delta_w = w_p @ a_t.T  # (out, K)
    delta_b = w_p @ (mean[pruned] - a_t.T @ mean[keep])  # (out,)
    return delta_w, delta_b
