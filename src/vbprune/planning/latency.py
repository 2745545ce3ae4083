"""Latency budgets: a per-site latency table measured on the current device, and plans
refined until the pruned model's measured latency meets the budget.

MACs are not latency: norms, softmax, reshapes and the model's stem do not shrink with
the units, and a narrower matrix product is not proportionally faster. So each site's
module (an MLP, an attention) is timed alone, on the inputs it gets in the model's
forward, at a few widths (copies shrunk by the surgery), and a line through those times
gives the seconds one unit (a neuron, a head) costs there. Sites with the same module,
shapes and inputs (the blocks of a ViT) are timed once. Units then go by score per
second saved (:func:`vbprune.core.budget.select_to_budget`, as with MAC budgets), and the
plan is checked by timing pruned copies (:mod:`.refinement`).

Tables are cached per device and architecture (weights do not change the time) under
``$VBPRUNE_CACHE/latency`` (default ``~/.cache/vbprune``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures.timing import device_name, time_in_turns, timing_batch
from ..core.errors import ConfigError
from .steps import Site, model_sites, progress

TABLE_VERSION = 1  # bump when the timing method changes: old cache entries are ignored


@dataclasses.dataclass
class LatencyTable:
    """Seconds of one forward of a model on one device, and what a unit of each site
    saves.

    Attributes:
        device: The device it was measured on (:func:`device_name`).
        batch_size: Images per forward.
        dense: Median seconds of one forward of the whole model, as measured.
        sites: Per site: ``units`` (the unit counts timed), ``seconds`` (the site's
            module at each count, median), ``per_unit`` (seconds one unit costs, the
            slope of a line through them, times the module's calls per forward, never
            below 0), ``width`` (units now) and ``calls``.
        key: The cache key (device, torch, dtype, batch, input size, architecture).
    """

    device: str
    batch_size: int
    dense: float
    sites: dict[str, dict[str, Any]]
    key: str = ""

    def per_unit(self) -> dict[str, float]:
        """Seconds a unit of each site costs (what a unit removed saves)."""
        return {name: float(entry["per_unit"]) for name, entry in self.sites.items()}

    def predict(self, kept: Mapping[str, int]) -> float:
        """Predicted seconds of the model keeping ``kept[site]`` units (others whole)."""
        saved = sum(
            (entry["width"] - kept.get(name, entry["width"])) * entry["per_unit"]
            for name, entry in self.sites.items()
        )  # fmt: skip
        return self.dense - saved

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (what the cache holds)."""
        return {"version": TABLE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def cache_dir() -> Path:
    """Where latency tables are cached: ``$VBPRUNE_CACHE/latency``, else
    ``$XDG_CACHE_HOME/vbprune/latency``, else ``~/.cache/vbprune/latency``."""
    root = os.environ.get("VBPRUNE_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "vbprune"
    return Path(root) / "latency"


def latency_table(
    model: nn.Module,
    sites: Sequence[Site] | None = None,
    batch_size: int = 1,
    cache: bool = True,
    repeats: int = 30,
    refresh: bool = False,
) -> LatencyTable:
    """Time ``model`` on its current device and each site at a few widths.

    Args:
        model: A supported model, on the device (and in the dtype) it will run on.
        sites: The sites to time (default: every MLP and every attention whose heads can
            be pruned).
        batch_size: Images per forward (zeros at the model's input size).
        cache: Read and write the table under :func:`cache_dir` (per device, torch
            version, dtype, batch, input size and architecture).
        repeats: Rounds of timing per site (fewer when they take over two seconds).
        refresh: Measure again even when the cache holds the table (and replace it).

    Returns:
        A :class:`LatencyTable`.
    """
    if sites is None:
        from ..architectures.finder import find_attention_sites_and_problems

        sites = [*model_sites(model, False)[0], *find_attention_sites_and_problems(model)[0]]
    batch = timing_batch(model, batch_size)
    key = _key(model, sites, batch)
    path = cache_dir() / f"{key}.json"
    if cache and not refresh:
        cached = _read(path)
        if cached is not None and matches(cached, sites, batch.device) is None:
            return cached  # else measured again and replaced
    training = model.training
    model.eval()
    try:
        table = _measure(model, list(sites), batch, repeats)
    finally:
        model.train(training)
    table.key = key
    if cache:
        _write(path, table)
    return table


def _read(path: Path) -> LatencyTable | None:
    """The cached table at ``path``; ``None`` if absent, unreadable or of another version."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("version") == TABLE_VERSION:
            return LatencyTable.from_dict(data)
    except (OSError, ValueError, TypeError):
        pass
    return None


def matches(table: LatencyTable, sites: Sequence[Site], device: torch.device) -> str | None:
    """Why ``table`` is not the table of these ``sites`` on ``device`` (a site missing,
    of another width, or another device), or ``None`` when it is."""
    # the kind of device, not its thread count (processes of one run may differ there)
    if table.device.split(" (")[0] != device_name(device).split(" (")[0]:
        return f"it was measured on {table.device}, the model is on {device_name(device)}"
    for site in sites:
        entry = table.sites.get(site.name)
        if entry is None or entry.get("width") != site.width // site.unit_size:
            return f"it does not match the model at {site.name!r}"
    return None


def _measure(model: nn.Module, sites: list[Site], batch: Tensor, repeats: int) -> LatencyTable:
    modules = {site.name: _timed_module(model, site) for site in sites}
    inputs = _capture(model, modules, batch)
    groups: dict[tuple, list[Site]] = {}
    for site in sites:
        if site.name not in inputs:
            raise ConfigError(f"{site.name} is not run by the model's forward: cannot time it")
        groups.setdefault(_signature(site, modules[site.name], inputs[site.name]), []).append(site)
    entries: dict[str, dict[str, Any]] = {}
    for members in progress("timing sites", len(groups))(list(groups.values())):
        site = members[0]
        args, kwargs, _ = inputs[site.name]
        counts = _counts(site)
        calls = {}
        for count in counts:
            clone = _shrunk_copy(modules[site.name], site, count)
            calls[count] = lambda m=clone, a=args, k=kwargs: m(*a, **k)
        seconds = time_in_turns(calls, batch.device, repeats, max_seconds=2.0)
        slope = _slope(counts, [seconds[c] for c in counts])
        for member in members:
            times = inputs[member.name][2]
            entries[member.name] = {
                "units": counts, "seconds": [seconds[c] for c in counts],
                "per_unit": max(slope, 0.0) * times, "width": counts[-1], "calls": times,
            }  # fmt: skip
    dense = time_in_turns({"dense": lambda: model(batch)}, batch.device, 10, 10.0)["dense"]
    return LatencyTable(device_name(batch.device), int(batch.shape[0]), dense, entries)


def _timed_module(model: nn.Module, site: Site) -> nn.Module:
    """The module holding every part of the site (an MLP's, or the attention)."""
    return site.module if site.module is not None else model.get_submodule(site.name)


def _capture(
    model: nn.Module, modules: Mapping[str, nn.Module], batch: Tensor
) -> dict[str, tuple[tuple, dict, int]]:
    """Per site: the positional and keyword inputs of its module's first call in one
    forward of ``model`` on ``batch``, and how often it is called."""
    seen: dict[str, list] = {}

    def hook(name: str):
        def record(module, args, kwargs):
            entry = seen.setdefault(name, [args, kwargs, 0])
            entry[2] += 1

        return record

    handles = [m.register_forward_pre_hook(hook(n), with_kwargs=True) for n, m in modules.items()]
    try:
        with torch.inference_mode():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (args, kwargs, calls) for name, (args, kwargs, calls) in seen.items()}


def _signature(site: Site, module: nn.Module, inputs: tuple[tuple, dict, int]) -> tuple:
    """What makes two sites time alike: the module's class and parameter shapes, the
    site's width and the inputs' shapes (or values, for what is not a tensor)."""

    def shape(value: Any) -> Any:
        if isinstance(value, Tensor):
            return tuple(value.shape)
        if isinstance(value, (tuple, list)):
            return tuple(shape(item) for item in value)
        return value if isinstance(value, (bool, int, float, str, type(None))) else type(value)

    args, kwargs, calls = inputs
    return (
        site.kind, type(module).__qualname__, site.width, site.unit_size, calls,
        tuple((n, tuple(p.shape)) for n, p in module.named_parameters()),
        tuple(shape(a) for a in args), tuple((k, shape(v)) for k, v in sorted(kwargs.items())),
    )  # fmt: skip


def _counts(site: Site) -> list[int]:
    """The unit counts a site is timed at, ascending, the full width last: every count of
    up to 8 heads, else 1/8, 1/4, 1/2, 3/4 and all of the units."""
    width = site.width // site.unit_size
    if width <= 8:
        return list(range(1, width + 1))
    return sorted({max(1, round(width * share)) for share in (0.125, 0.25, 0.5, 0.75, 1.0)})


def _shrunk_copy(module: nn.Module, site: Site, count: int) -> nn.Module:
    """A copy of ``module`` whose site keeps its first ``count`` units."""
    memo: dict[int, Any] = {}
    clone = copy.deepcopy(module, memo)
    changes = {}
    for field in dataclasses.fields(site):
        value = getattr(site, field.name)
        if isinstance(value, nn.Module):
            changes[field.name] = memo[id(value)]
        elif isinstance(value, tuple) and value and isinstance(value[0], nn.Module):
            changes[field.name] = tuple(memo[id(part)] for part in value)
    twin = dataclasses.replace(site, **changes)
    if site.kind == "attention":
        twin.shrink_heads(count)
    else:
        twin.shrink(torch.arange(count))
    return clone.eval()


def _slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of ``y`` against ``x`` (0 for a single point)."""
    if len(x) < 2:
        return 0.0
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    spread = sum((a - mean_x) ** 2 for a in x)
    return sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y)) / spread


def _key(model: nn.Module, sites: Sequence[Site], batch: Tensor) -> str:
    """The cache key: what the time depends on, not the weights' values."""
    described = {
        "version": TABLE_VERSION, "device": device_name(batch.device), "host": _host(),
        "libraries": _versions(), "dtype": str(batch.dtype), "batch": list(batch.shape),
        "modules": [[type(m).__qualname__, _settings(m)] for m in model.modules()],
        "params": [[n, list(p.shape)] for n, p in model.named_parameters()],
        "sites": [[s.name, s.kind, s.width, s.unit_size] for s in sites],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:24]


def _settings(module: nn.Module) -> dict[str, Any]:
    """A module's plain settings (head counts, fused attention, ...): what changes its
    time besides the shapes."""
    return {k: v for k, v in sorted(vars(module).items()) if not k.startswith("_")
            and k != "training" and isinstance(v, (bool, int, float, str))}  # fmt: skip


def _versions() -> dict[str, str]:
    """The versions of the libraries that run the forward."""
    import importlib.metadata

    found = {}
    for name in ("torch", "timm", "transformers"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = ""
    return found


def _host() -> str:
    """The machine's processor (a cache shared by machines of one kind serves them all)."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info
                          if line.startswith("model name")), model)  # fmt: skip
    except OSError:
        pass
    return model


def _write(path: Path, table: LatencyTable) -> None:
    """Write the cache entry whole or not at all (a cache that cannot be written is
    only slower next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(table.to_dict()))
        partial.replace(path)
    except OSError:
        pass
