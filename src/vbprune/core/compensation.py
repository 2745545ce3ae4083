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


def lost_output_variance(
    w2: Tensor, keep: Tensor, pruned: Tensor, cov: Tensor, delta_w: Tensor | None = None
) -> float:
    """Fraction of the variance of fc2's output (over the calibration data) that the
    removal loses: ``E||W2[:, P] e||^2 / E||W2 (a - m)||^2`` with the residual ``e`` of the
    removed activations after compensation.

    With ``delta_w`` ``None`` it is the mean fold's loss (``e = a_P - m_P``); with the
    least-squares ``delta_w`` (``W2[:, P] A``) the residual is ``a_P - m_P - A (a_K - m_K)``.
    Constants (means) are compensated exactly by either, so they do not enter.
    """
    cov = cov.double()
    w2 = w2.double()
    total = torch.einsum("oi,ij,oj->", w2, cov, w2)  # trace(W2 S W2^T)
    w_p = w2[:, pruned]
    lost = torch.einsum("oi,ij,oj->", w_p, cov[pruned][:, pruned], w_p)
    if delta_w is not None:
        # W2_P A (a_K - m_K) is what the correction adds back:
        # E||W2_P e_P - dW e_K||^2 = W2_P S_PP W2_P^T - 2 W2_P S_PK dW^T + dW S_KK dW^T
        delta_w = delta_w.double()
        cross = torch.einsum("oi,ij,oj->", w_p, cov[pruned][:, keep], delta_w)
        lost = lost - 2 * cross + torch.einsum("oi,ij,oj->", delta_w, cov[keep][:, keep], delta_w)
    return float(lost.clamp_min(0.0) / total.clamp_min(torch.finfo(torch.float64).tiny))
