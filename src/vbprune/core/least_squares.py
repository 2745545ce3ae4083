"""Least squares: what fc2 should do without the removed neurons (torch only).

The maths behind the ``ls`` compensation (:mod:`.compensation`) and the ``obs``
criterion (:mod:`.criteria`).

VBP replaces every removed neuron by its mean. Kept and removed neurons of one MLP are
correlated, so fc2 can do better: predict the removed activations from the kept ones.
With kept set K, removed set P, calibration means m and covariance S,

    A = S_PK (S_KK + lambda I)^-1,   W2[:, K] += W2[:, P] A,   b2 += W2[:, P] (m_P - A m_K).

This minimises the expected squared error of fc2's output over the calibration data
(the ridge term aside). With uncorrelated neurons A = 0 and it is exactly the mean fold;
a constant neuron has zero covariance, so it is folded exactly as well.
"""

from __future__ import annotations

import math

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
    s_kp = cov[keep][:, pruned]
    a_t = torch.linalg.solve(damped(cov[keep][:, keep], damping), s_kp)  # (K, P) = A^T
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


def obs_removal_scores(
    w2: Tensor, cov: Tensor, damping: float = DAMPING, block: int | None = None
) -> Tensor:
    """Scores of an Optimal-Brain-Surgeon greedy removal order, for ``criterion="obs"``.

    Removing neuron ``j`` from the least-squares-compensated MLP increases the expected
    squared error of fc2's output by ``||W2'[:, j]||^2 / [S^-1]_jj``, where ``W2'`` is fc2
    after the compensations of the neurons removed so far and ``S^-1`` the inverse
    covariance of the neurons still kept (Hassibi and Stork's OBS, with the activation
    covariance as the Hessian). This removes, ``block`` at a time, the neurons with the
    smallest increase, updates ``W2'`` and ``S^-1`` exactly for the removed block (a
    Schur complement), and repeats until one neuron is left.

    Unlike the variance, this sees what least squares can restore: a neuron that the kept
    ones predict well costs little even if it varies a lot.

    Args:
        w2: ``(out, H)`` weight of fc2.
        cov: ``(H, H)`` covariance of the hidden activations.
        damping: Ridge term relative to the mean variance, as in
            :func:`least_squares_correction`.
        block: Neurons removed per step (default ``max(1, H // 128)``: 2 for H = 256,
            24 for H = 3072; one neuron per step is the exact greedy order, larger blocks
            are faster and, on the digits ViT, as good up to about 3 % of H).

    Returns:
        ``(H,)`` float64 scores, lowest removed first: strictly increasing along the
        removal order, each the error increase of its step (per neuron of the block) in
        fc2's output units, made increasing with a running maximum so that any count
        removed by rank is a prefix of the greedy order. The last neuron scores ``inf``.
    """
    width = cov.shape[0]
    block = max(1, width // 128) if block is None else block
    cov = cov.double()
    w = w2.double().flatten(1).clone()  # (out, H), compensated as neurons go
    inv = _damped_inverse(cov, damping)
    alive = torch.arange(width, device=cov.device)  # original index of each row held
    live = torch.ones(width, dtype=torch.bool, device=cov.device)  # not removed yet
    scores = torch.full((width,), float("inf"), dtype=torch.float64, device=cov.device)
    last, left = -float("inf"), width
    while left > 1:
        increase = w.square().sum(0) / inv.diagonal()  # (held,)
        increase.masked_fill_(~live, float("inf"))  # removed: 0 / 0
        count = min(block, left - 1)
        picked = torch.topk(increase, count, largest=False).indices
        picked = picked[increase[picked].argsort()]  # the cheapest first within the block
        inv_bb = torch.linalg.inv(inv[picked][:, picked])  # (b, b)
        w_b = w[:, picked]
        step = float(torch.einsum("oi,ij,oj->", w_b, inv_bb, w_b)) / count
        for index in alive[picked].tolist():
            last = max(step, math.nextafter(last, math.inf))
            scores[index] = last
        # remove the block: the kept neurons take over what least squares can restore;
        # the block's own rows and columns become zero
        rows = inv_bb @ inv[picked]  # (b, held)
        w.addmm_(w_b, rows, alpha=-1.0)  # in place: one pass over each matrix
        inv.addmm_(inv[:, picked], rows, alpha=-1.0)
        live[picked] = False
        left -= count
        if left <= live.numel() // 2:  # drop removed rows now and then: amortised copies
            alive, w, inv, live = alive[live], w[:, live], inv[live][:, live], live[live]
    return scores


def damped(cov: Tensor, damping: float = DAMPING) -> Tensor:
    """``S + lambda I`` with ``lambda = damping * mean(diag S)`` (the ridge of
    :func:`least_squares_correction` and :func:`obs_removal_scores`)."""
    scale = cov.diagonal().mean().clamp_min(torch.finfo(cov.dtype).tiny)
    return cov + damping * scale * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)


def _damped_inverse(cov: Tensor, damping: float) -> Tensor:
    """``(S + lambda I)^-1`` (see :func:`damped`), symmetric."""
    matrix = damped(cov, damping)
    factor, info = torch.linalg.cholesky_ex(matrix)
    inv = torch.cholesky_inverse(factor) if int(info) == 0 else torch.linalg.inv(matrix)
    return (inv + inv.T) / 2  # symmetric to rounding, so the updates keep it so


def obs_group_scores(w2: Tensor, cov: Tensor, size: int, damping: float = DAMPING) -> Tensor:
    """:func:`obs_removal_scores` for units of ``size`` consecutive channels (heads).

    Removing group ``g`` (channels ``G``) from the least-squares-compensated layer raises
    the expected squared output error by ``tr(W'_G [S^-1]_GG^-1 W'_G^T)``, the group form
    of OBS. The cheapest group goes first, then ``W'`` and ``S^-1`` are updated exactly
    (a Schur complement), until one group is left.

    Returns:
        ``(C / size,)`` float64 scores, increasing along the greedy order (a running
        maximum), the last group ``inf``.
    """
    width = cov.shape[0]
    groups = width // size
    cov = cov.double()
    w = w2.double().flatten(1).clone()
    inv = _damped_inverse(cov, damping)
    live = list(range(groups))
    scores = torch.full((groups,), float("inf"), dtype=torch.float64, device=cov.device)
    last = -float("inf")
    while len(live) > 1:
        costs = []
        for group in live:
            index = slice(group * size, (group + 1) * size)
            w_g = w[:, index]
            costs.append(float(torch.einsum("oi,ij,oj->", w_g, torch.linalg.inv(inv[index, index]),
                                            w_g)))  # fmt: skip
        position = min(range(len(live)), key=costs.__getitem__)
        group = live.pop(position)
        last = max(costs[position], math.nextafter(last, math.inf))
        scores[group] = last
        index = slice(group * size, (group + 1) * size)
        rows = torch.linalg.inv(inv[index, index]) @ inv[index]  # (size, C)
        w.addmm_(w[:, index].clone(), rows, alpha=-1.0)
        inv.addmm_(inv[:, index].clone(), rows, alpha=-1.0)
    return scores
