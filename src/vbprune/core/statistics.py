"""Per-neuron running moments in float64, merged exactly with Chan's formula (torch only).

Every token (ViT, Swin) or spatial position (ConvNeXt) is one sample. A batch is reduced in
its own precision (float32 at least) around a shift close to the mean (the running mean,
or the first batch's own mean), which guards the sum of squares against cancellation;
batches, files and processes are then merged in float64 with Chan et al.'s parallel
update, so the result does not depend on how the samples were split.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import MissingInputError, OutputNotWritableError, StatisticsError, out_of_space

_FORMAT = "vbprune-activation-stats"


def chan_merge(
    n_a: int, mean_a: Tensor, m2_a: Tensor, n_b: int, mean_b: Tensor, m2_b: Tensor
) -> tuple[int, Tensor, Tensor]:
    """Merge two sets of moments (count, mean, M2) of disjoint samples.

    ``d = mean_b - mean_a; n = n_a + n_b; mean = mean_a + d*n_b/n;
    M2 = M2_a + M2_b + d^2*n_a*n_b/n`` (Chan, Golub, LeVeque 1979).
    """
    n = n_a + n_b
    if n_a == 0:
        return n_b, mean_b.clone(), m2_b.clone()
    if n_b == 0:
        return n_a, mean_a.clone(), m2_a.clone()
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


def merge_comoments(
    n_a: int, mean_a: Tensor, c2_a: Tensor, n_b: int, mean_b: Tensor, c2_b: Tensor
) -> Tensor:
    """Co-moment matrix (sum of outer products of deviations) of two disjoint sample
    sets: ``C = C_a + C_b + d d^T * n_a*n_b/n`` with ``d = mean_b - mean_a`` (Chan's
    formula, one dimension up)."""
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return (c2_b if n_a == 0 else c2_a).clone()
    delta = mean_b - mean_a
    return c2_a + c2_b + torch.outer(delta, delta) * (n_a * n_b / n)


def symmetric_gram(rows: Tensor, block: int = 256) -> Tensor:
    """``rows.T @ rows`` for ``rows`` of shape ``(n, H)``, computing only the block upper
    triangle and mirroring it: ``(1 + block/H) / 2`` of the full product's multiply-adds
    (0.58x for H = 1536), which are most of the cost of collecting a covariance."""
    width = rows.shape[1]
    if width <= 2 * block:  # too few blocks to save anything
        return rows.T @ rows
    gram = torch.empty(width, width, dtype=rows.dtype, device=rows.device)
    for start in range(0, width, block):
        stop = min(start + block, width)
        strip = rows[:, start:stop].T @ rows[:, start:]  # rows start:stop, columns start:
        gram[start:stop, start:] = strip
        gram[stop:, start:stop] = strip[:, stop - start :].T
    return gram


def sample_positions(
    rows: Tensor, fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, float]:
    """``ceil(fraction * P)`` random positions of each image of ``rows`` ``(B, P, H)``,
    drawn without replacement, as ``(B * k, H)``, and the weight ``P / k`` that makes sums
    over them unbiased estimates of sums over all positions."""
    images, positions, width = rows.shape
    k = min(positions, max(1, math.ceil(fraction * positions)))
    rand = torch.rand(images, positions, generator=generator, device=rows.device)
    picked = rand.argsort(dim=1)[:, :k]  # (B, k), distinct within an image
    sample = rows.gather(1, picked.unsqueeze(-1).expand(-1, -1, width))
    return sample.reshape(images * k, width), positions / k


def _match_diagonal(gram: Tensor, target: Tensor) -> None:
    """Rescale an estimated Gram matrix in place to the diagonal ``target``: ``D G D`` with
    ``D = sqrt(target / diag G)`` keeps the estimated correlations and keeps it positive
    semi-definite (a neuron constant on the sample gets a zero row and column)."""
    diagonal = gram.diagonal().double()
    scale = torch.where(diagonal > 0, target / diagonal.clamp(min=1e-300), 0.0).sqrt()
    scale = scale.to(gram.dtype)
    gram.mul_(scale.unsqueeze(1)).mul_(scale)


@dataclass
class NeuronStats:
    """Running count, mean and M2 (sum of squared deviations) of H neurons, float64, and
    optionally their co-moment matrix (for least-squares compensation).

    Attributes:
        count: Number of samples seen (the same for every neuron of a site).
        mean: ``(H,)`` float64 mean of each neuron.
        m2: ``(H,)`` float64 sum of squared deviations from the mean.
        c2: ``(H, H)`` float64 sum of outer products of deviations, or ``None`` when the
            covariance is not collected (H^2 numbers per MLP: DeiT-B's 12 MLPs of 3072
            neurons take 906 MB).
    """

    count: int
    mean: Tensor
    m2: Tensor
    c2: Tensor | None = None

    @classmethod
    def empty(
        cls, width: int, device: torch.device | str | None = None, covariance: bool = False
    ) -> NeuronStats:
        """Moments of no samples for ``width`` neurons (with a zero co-moment matrix
        when ``covariance``)."""
        zeros = torch.zeros(width, dtype=torch.float64, device=device)
        c2 = torch.zeros(width, width, dtype=torch.float64, device=device) if covariance else None
        return cls(0, zeros, zeros.clone(), c2)

    @property
    def cov(self) -> Tensor:
        """Unbiased covariance ``C2 / (count - 1)`` (as ``torch.cov``); its diagonal is
        :attr:`var`.

        Raises:
            StatisticsError: if the covariance was not collected.
        """
        if self.c2 is None:
            raise StatisticsError(
                "these statistics have no covariance: calibrate with "
                "VarianceCalibrator(model, covariance=True)"
            )
        if self.count < 2:
            return torch.full_like(self.c2, float("nan"))
        return self.c2 / (self.count - 1)

    @property
    def var(self) -> Tensor:
        """Unbiased sample variance ``M2 / (count - 1)`` (Bessel-corrected, as ``torch.var``).

        NaN where fewer than two samples were seen.
        """
        if self.count < 2:
            return torch.full_like(self.m2, float("nan"))
        return self.m2 / (self.count - 1)

    def update(
        self,
        x: Tensor,
        channel_dim: int = -1,
        covariance_fraction: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        """Add a batch in place: every position of ``x`` off ``channel_dim`` is one sample.

        Args:
            x: Activations of any float dtype, e.g. ``(B, T, H)`` tokens with
                ``channel_dim=-1`` or ``(B, H, h, w)`` feature maps with ``channel_dim=1``.
            channel_dim: The dimension that indexes the H neurons.
            covariance_fraction: With a co-moment matrix, estimate it from this fraction of
                each image's positions (dimension 0 indexes images), drawn at random with
                ``generator``; 1.0 uses them all. Means and variances always use every
                position. See :func:`sample_positions`.
            generator: Random generator on ``x``'s device for the position subset.
        """
        channel_dim %= x.dim()
        width = x.shape[channel_dim]
        n = x.numel() // width if width else 0
        if n == 0:
            return
        view_shape = [1] * x.dim()
        view_shape[channel_dim] = width
        other_dims = [d for d in range(x.dim()) if d != channel_dim]
        work_dtype = torch.promote_types(x.dtype, torch.float32)
        # Centre on the running mean (the first batch: its own mean) so that the sum of
        # squares is of deviations, not of raw values: no cancellation for neurons whose
        # mean dwarfs their spread, which are exactly the ones pruning looks for.
        if self.count:
            shift = self.mean.to(work_dtype)  # (H,)
        else:
            shift = x.to(work_dtype).mean(other_dims)  # (H,), one extra pass, once
        centred = x.to(work_dtype) - shift.view(view_shape)  # fresh buffer, reused below
        # Sums in the work precision: torch sums with a cascade, so deviations from a
        # near-mean shift lose ~2e-7 relative in float32 over a DeiT-S batch (1576 tokens),
        # while accumulating in float64 would copy the whole batch and cost 5x more.
        s1 = centred.sum(other_dims).double()  # (H,)
        gram, weight, subset = None, 1.0, self.c2 is not None and covariance_fraction < 1.0
        if self.c2 is not None:  # before the squares overwrite ``centred``
            rows = centred.movedim(channel_dim, -1).reshape(x.shape[0], -1, width)  # (B, P, H)
            if subset:
                sample, weight = sample_positions(rows, covariance_fraction, generator)
                sample -= (s1 / n).to(sample.dtype)  # about the batch mean: stays PSD
                gram = symmetric_gram(sample)
            else:
                gram = symmetric_gram(rows.reshape(n, width))  # about the shift
        s2 = centred.square_().sum(other_dims).double()  # (H,)
        batch_mean = shift.double() + s1 / n
        batch_m2 = (s2 - s1 * s1 / n).clamp_(min=0.0)
        if gram is not None:
            self._add_comoments(gram, weight, subset, n, s1, batch_mean, batch_m2)
        self.count, self.mean, self.m2 = chan_merge(
            self.count, self.mean, self.m2, n, batch_mean, batch_m2
        )
        if subset:  # the estimate's diagonal, made exact
            self.c2.diagonal().copy_(self.m2)

    def _add_comoments(
        self, gram: Tensor, weight: float, subset: bool, n: int, s1: Tensor,
        batch_mean: Tensor, batch_m2: Tensor,
    ) -> None:  # fmt: skip
        """Chan's merge of a batch's co-moments into ``c2``, in place: one float64 pass
        for the Gram matrix and one for all rank-one corrections together (separate
        float64 temporaries and passes cost as much as the Gram matrix of a small token
        subset)."""
        merged = self.count + n
        delta = batch_mean - self.mean  # Chan's d d^T * n_a * n_b / n (0 for the first)
        columns = [(delta, delta * (self.count * n / merged))]
        if subset:
            _match_diagonal(gram, batch_m2 / weight)
        else:  # about the shift: minus s1 s1^T / n makes it about the batch mean
            columns.append((s1, -s1 / n))
        left = torch.stack([c[0] for c in columns], 1)
        right = torch.stack([c[1] for c in columns], 0)
        self.c2.add_(gram.double(), alpha=weight).addmm_(left, right)

    def merge(self, other: NeuronStats) -> NeuronStats:
        """Moments of the union of both sample sets (neither input is modified)."""
        if other.mean.shape != self.mean.shape:
            raise StatisticsError(
                f"cannot merge statistics of width {other.mean.numel()} into width "
                f"{self.mean.numel()}"
            )
        other_mean = other.mean.to(self.mean.device)
        other_m2 = other.m2.to(self.mean.device)
        c2 = None
        if self.c2 is not None and other.c2 is not None:  # else: the covariance is lost
            c2 = merge_comoments(self.count, self.mean, self.c2, other.count, other_mean,
                                 other.c2.to(self.mean.device))  # fmt: skip
        merged = chan_merge(self.count, self.mean, self.m2, other.count, other_mean, other_m2)
        return NeuronStats(*merged, c2)

    def to(self, device: torch.device | str) -> NeuronStats:
        """A copy on ``device``."""
        c2 = self.c2.to(device) if self.c2 is not None else None
        return NeuronStats(self.count, self.mean.to(device), self.m2.to(device), c2)

    def is_finite(self) -> bool:
        """False when any mean, M2 or co-moment is NaN or infinite."""
        values = [self.mean, self.m2] + ([self.c2] if self.c2 is not None else [])
        return all(bool(torch.isfinite(v).all()) for v in values)


def problem_of(entry: NeuronStats) -> str | None:
    """What makes a set of moments impossible (a phrase after "statistics of SITE"), or
    ``None``."""
    width = entry.mean.numel()
    if entry.mean.dim() != 1 or entry.m2.shape != entry.mean.shape:
        return f"have mean {tuple(entry.mean.shape)} and M2 {tuple(entry.m2.shape)}"
    if entry.c2 is not None and entry.c2.shape != (width, width):
        return f"have a {tuple(entry.c2.shape)} co-moment matrix for {width} neurons"
    if entry.count < 0:
        return f"count {entry.count} samples"
    if not entry.is_finite():
        return "hold NaN or infinite values"
    if bool((entry.m2 < 0).any()):
        return "hold a negative M2 (sum of squared deviations)"
    return None


class ActivationStats(Mapping[str, NeuronStats]):
    """Statistics of every MLP site of a model, by site name, in forward order.

    ``stats["blocks.3.mlp"].var`` is the variance of each hidden neuron of that MLP.

    ``provenance`` says where the statistics come from (``vbprune calibrate`` records the
    model, a fingerprint of its weights, the dataset, split, samples, seed and
    transform); it is saved with them, and empty when nothing was recorded.
    """

    def __init__(
        self, sites: Mapping[str, NeuronStats], provenance: Mapping[str, Any] | None = None
    ):
        self._sites = dict(sites)
        self.provenance: dict[str, Any] = dict(provenance or {})

    def __getitem__(self, name: str) -> NeuronStats:
        return self._sites[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sites)

    def __len__(self) -> int:
        return len(self._sites)

    def __repr__(self) -> str:
        counts = sorted({s.count for s in self._sites.values()})
        return f"ActivationStats({len(self)} sites, samples per site {counts})"

    def merge(self, other: ActivationStats) -> ActivationStats:
        """Exact statistics of both sample sets together (Chan's formula per site).

        Raises:
            StatisticsError: (a ``ValueError``) if the two do not cover the same sites.
        """
        if set(self) != set(other):
            raise StatisticsError(
                f"cannot merge statistics of different sites: {sorted(set(self) ^ set(other))}"
            )
        merged = {name: s.merge(other[name]) for name, s in self.items()}
        return ActivationStats(merged, self.provenance)

    def to(self, device: torch.device | str) -> ActivationStats:
        """A copy with every tensor on ``device``."""
        return ActivationStats({name: s.to(device) for name, s in self.items()}, self.provenance)

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file (atomically: a temporary file moved into place)."""
        from safetensors.torch import save_file

        tensors: dict[str, Tensor] = {}
        for name, s in self.items():
            tensors[f"{name}.mean"] = s.mean.detach().cpu().contiguous()
            tensors[f"{name}.m2"] = s.m2.detach().cpu().contiguous()
            tensors[f"{name}.count"] = torch.tensor([s.count], dtype=torch.int64)
            if s.c2 is not None:
                tensors[f"{name}.c2"] = s.c2.detach().cpu().contiguous()
        metadata = {"format": _FORMAT, "version": "1", "sites": json.dumps(list(self))}
        if self.provenance:
            metadata["provenance"] = json.dumps(self.provenance)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")  # fmt: skip
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=metadata)
            os.replace(tmp, path)
        except BaseException as error:
            Path(tmp).unlink(missing_ok=True)
            reason = out_of_space(error)
            if reason is not None:
                raise OutputNotWritableError.full_disk(path, reason) from error
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> ActivationStats:
        """Read statistics written by :meth:`save`.

        Raises:
            MissingInputError: (a ``FileNotFoundError``) if ``path`` does not exist.
            StatisticsError: (a ``ValueError``) if the file is not a vbprune statistics file,
                is truncated or corrupt, or holds impossible moments (a negative count or
                M2, NaN, shapes that disagree); the message names the file and the site.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"statistics file not found: {path}")
        try:
            with safe_open(str(path), framework="pt", device=device) as f:
                metadata = f.metadata() or {}
                if metadata.get("format") != _FORMAT:
                    raise StatisticsError(f"{path} is not a vbprune activation-statistics file")
                provenance = json.loads(metadata.get("provenance", "{}"))
                sites = {}
                keys = set(f.keys())
                for name in json.loads(metadata["sites"]):
                    count = int(f.get_tensor(f"{name}.count")[0])
                    c2 = f.get_tensor(f"{name}.c2") if f"{name}.c2" in keys else None
                    sites[name] = NeuronStats(
                        count, f.get_tensor(f"{name}.mean"), f.get_tensor(f"{name}.m2"), c2
                    )
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as error:
            if isinstance(error, StatisticsError):
                raise
            raise StatisticsError(
                f"{path} is not a readable statistics file (truncated or corrupt?): "
                f"{type(error).__name__}: {error}"
            ) from None
        for name, entry in sites.items():
            problem = problem_of(entry)
            if problem:
                raise StatisticsError(f"{path}: statistics of {name} {problem}")
        return cls(sites, provenance)
