"""What several commands do once their options are typed (:mod:`.options`): start
accelerate, load the model, build a loader, calibrate. Imported by the commands' ``run``
only (it loads torch)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from accelerate import Accelerator

from ..calibration import VarianceCalibrator, check_process_count
from ..core.statistics import ActivationStats
from ..data import ImageCollator, image_transform, load_image_dataset, make_loader
from ..data.sources import undecoded
from ..io.model_specs import load_model
from .options import DataOptions, ModelOptions


def make_accelerator() -> Accelerator:
    """An ``Accelerator`` checked to span every launched process, before anything loads."""
    accelerator = Accelerator()
    check_process_count(accelerator)
    return accelerator


def prepare_model(options: ModelOptions, accelerator: Accelerator) -> torch.nn.Module:
    """The model loaded, on the accelerator's device in its dtype, in eval mode."""
    model = load_model(options.model, pretrained=options.pretrained, seed=options.seed)
    return model.to(accelerator.device, getattr(torch, options.dtype)).eval()


def image_loader(
    data: DataOptions,
    model: torch.nn.Module,
    accelerator: Accelerator,
    split: str,
    num_samples: int | None,
    labels: bool,
) -> SkippedImages:
    """A loader of this process's shard of ``split``, preprocessed for ``model``."""
    label_column = data.label_column if labels else None
    dataset = load_image_dataset(
        data.dataset, split, image_column=data.image_column, label_column=label_column,
        num_samples=num_samples, streaming=data.streaming, shuffle_seed=data.seed,
    )  # fmt: skip
    mapping = None
    if labels:  # labels follow the model's class names (or are refused), not the folders'
        mapping = label_mapping(dataset, data.label_column, model, f"{data.dataset} ({split})",
                                str(data.dataset))  # fmt: skip
    dataset = undecoded(dataset, data.image_column)  # decoded, named or skipped, below
    collate = ImageCollator(image_transform(model), data.image_column, label_column,
                            skip_bad_images=data.skip_bad_images,
                            label_map=mapping)  # fmt: skip
    loader = make_loader(dataset, collate, data.batch_size, data.num_workers, accelerator)
    return SkippedImages(loader, accelerator)


class SkippedImages:
    """A loader's batches without the names of the images the collator skipped
    (``--skip-bad-images``), which it counts; batches left with no image are dropped."""

    def __init__(self, loader: torch.utils.data.DataLoader, accelerator: Accelerator):
        self.loader = loader
        self.accelerator = accelerator
        self.names: list[str] = []
        self.images = 0  # read and kept

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.names.extend(batch.pop("skipped", []))
            self.images += len(batch["pixel_values"])
            if len(batch["pixel_values"]):
                yield batch

    def report(self) -> dict[str, Any] | None:
        """What the report records: how many images every process skipped (each once,
        however often the loader was read), and the first few names; printed once."""
        return skipped_report(self.names, self.accelerator)


def skipped_report(names: Iterable[str], accelerator: Accelerator) -> dict[str, Any] | None:
    """The unreadable images every process skipped, each named once: printed once, and
    ``{"count", "first"}`` for the report (``None`` if there were none). Every process
    must call it (it gathers)."""
    names = list(dict.fromkeys(names))
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        names = list(dict.fromkeys(n for part in gather_object([names]) for n in part))
    if not names:
        return None
    if accelerator.is_main_process:
        print(f"skipped {len(names)} unreadable image(s), e.g. {names[:3]}")
    return {"count": len(names), "first": names[:10]}


def _spelled_alike(a: str, b: str) -> bool:
    """Two spellings of one class name ("crane2" and "crane", "Tench" and "tench")."""
    import difflib

    a, b = a.lower().strip(), b.lower().strip()
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def label_mapping(
    dataset, label_column: str, model: torch.nn.Module, what: str, source: str | None = None
) -> dict[int, int] | None:
    """The model's class index of each dataset label, when they differ (``None``: the
    same numbering), so that labels follow the model's class names.

    With class names on both sides (a ``ClassLabel``; ``id2label`` or timm's
    ``label_names``) the labels are matched by name: a dataset class the model lacks is
    refused, a model class the dataset lacks is fine; two spellings of one name at the
    same index are one class. Names of two different schemes (no name in common) fall
    back to the numbering. Without the model's names, a folder
    split that lacks classes and has no ``train/`` to number them by is refused (its
    labels would be renumbered silently), as are more classes than the model predicts.

    Raises:
        DatasetError: naming the classes, the model's count and what to do.
    """
    from pathlib import Path

    from ..architectures.interface import class_names, num_classes
    from ..core.errors import DatasetError

    feature = (getattr(dataset, "features", None) or {}).get(label_column)
    names = list(getattr(feature, "names", None) or [])  # a ClassLabel: the dataset's classes
    classes = num_classes(model)
    model_names = class_names(model)
    if names and model_names and set(names) & set(model_names):
        places: dict[str, list[int]] = {}
        for index, name in enumerate(model_names):
            places.setdefault(name, []).append(index)
        # each dataset label's class in the model: by name (its own index where a name
        # repeats), else by index where the two names are spellings of one (ImageNet's
        # "crane2" is its models' second "crane")
        found = {i: (i if i in places.get(name, ()) else (places.get(name) or [None])[0])
                 for i, name in enumerate(names)}  # fmt: skip
        for i, j in found.items():
            if j is None and i < len(model_names) and _spelled_alike(names[i], model_names[i]):
                found[i] = i
        missing = [names[i] for i, j in found.items() if j is None]
        if missing:
            raise DatasetError(
                f"{what} has classes the model does not know: {missing[:5]} (its classes: "
                f"{model_names[:5]}{' ...' if len(model_names) > 5 else ''})"
            )
        return None if all(i == j for i, j in found.items()) else found
    if names and classes and len(names) > classes:
        raise DatasetError(
            f"{what} has {len(names)} classes, the model predicts {classes}: they must share "
            "one label space"
        )
    local = Path(source).expanduser() if source is not None else None
    local = local if local is not None and local.is_dir() else None
    if names and classes and len(names) < classes and local and not (local / "train").is_dir():
        raise DatasetError(
            f"{what} has {len(names)} classes, the model predicts {classes} and has no "
            "class names to match them by: its labels would be renumbered; add the "
            f"missing class folders or a {local / 'train'} folder to number them by"
        )
    return None


def calibrate(
    data: DataOptions,
    model: torch.nn.Module,
    accelerator: Accelerator,
    covariance: bool,
    heads: bool = False,
    model_spec: str | None = None,
) -> tuple[ActivationStats, dict[str, Any]]:
    """Statistics of ``model`` on the data's split (with the covariance, on its
    ``covariance_fraction`` of the tokens, when ``covariance``; of the attention sites
    too, for pruning heads, when ``heads``), and what the report records. The statistics'
    ``provenance`` records the model (``model_spec`` and a fingerprint of its weights),
    the dataset, split, samples, seed and transform."""
    calibrator = VarianceCalibrator(  # with heads, a model whose heads cannot go fails here
        model, accelerator=accelerator, covariance=covariance,
        covariance_fraction=data.covariance_fraction, seed=data.seed, heads=heads,
    )  # fmt: skip
    loader = image_loader(data, model, accelerator, data.split, data.num_samples, labels=False)
    start = time.perf_counter()
    stats = calibrator.run(loader)
    seconds = time.perf_counter() - start
    first = next(iter(stats.values()))
    info = {
        "dataset": str(data.dataset),
        "split": data.split,
        "num_samples_requested": data.num_samples,
        "samples_first_mlp": first.count,
        "processes": accelerator.num_processes,
        "covariance": covariance,
        "covariance_fraction": data.covariance_fraction if covariance else None,
        "seconds": round(seconds, 3),
        "images": loader.images,  # this process's
    }
    if heads:  # reports of MLP-only calibrations read as before
        info["attention_sites"] = sum(site.kind == "attention" for site in calibrator.sites)
    stats.provenance = provenance(data, accelerator.unwrap_model(model), model_spec)
    skipped = loader.report()
    if skipped:
        info["skipped_images"] = skipped
    if accelerator.is_main_process:
        print(f"calibrated on {loader.images} images ({data.split} of {data.dataset}"
              + (", this process" if accelerator.num_processes > 1 else "") + ")")  # fmt: skip
    return stats, info


def provenance(data: DataOptions, model: torch.nn.Module, model_spec: str | None) -> dict:
    """Where statistics of ``model`` on ``data`` come from (saved with them)."""
    from ..data.transforms import image_transform
    from ..io.weights import weights_fingerprint

    try:
        transform = repr(image_transform(model))[:500]
    except Exception as error:  # a model without a known preprocessing: say so, go on
        transform = f"unknown ({type(error).__name__})"
    return {
        "model": model_spec, "weights": weights_fingerprint(model),
        "dataset": None if data.dataset is None else str(data.dataset), "split": data.split,
        "num_samples": data.num_samples, "seed": data.seed, "transform": transform,
    }  # fmt: skip


def check_provenance(
    stats: ActivationStats, model: torch.nn.Module, data: DataOptions, accept_other: bool
) -> None:
    """Refuse statistics recorded on other weights than ``model``'s (one line, unless
    ``accept_other``); warn when they come from another dataset than ``data``'s.

    Raises:
        StatisticsError: the fingerprints differ and ``accept_other`` is not set.
    """
    import warnings

    from ..core.errors import StatisticsError
    from ..io.weights import weights_fingerprint

    recorded = stats.provenance
    if recorded.get("weights") and recorded["weights"] != weights_fingerprint(model):
        if not accept_other:
            raise StatisticsError(
                f"the statistics were collected on other weights (of {recorded.get('model')}, "
                f"fingerprint {recorded['weights']}) than this model's; pass "
                "--accept-other-weights to use them anyway"
            )
        warnings.warn("using statistics collected on other weights (--accept-other-weights)",
                      stacklevel=2)  # fmt: skip
    dataset = recorded.get("dataset")
    if dataset and data.dataset is not None and str(data.dataset) != dataset:
        warnings.warn(
            f"the statistics come from {dataset} ({recorded.get('split')}), not from "
            f"--dataset {data.dataset}", stacklevel=2,
        )  # fmt: skip


def probe_images(data: DataOptions, model: torch.nn.Module, count: int) -> torch.Tensor:
    """Up to ``count`` preprocessed images of the calibration split, drawn with the
    calibration's seed (so among its images), on the CPU: the same on every process (not
    sharded), so every process makes the same choice on them (``prune --heads``)."""
    wanted = count if data.num_samples is None else min(count, data.num_samples)
    dataset = load_image_dataset(
        data.dataset, data.split, image_column=data.image_column, label_column=None,
        num_samples=wanted, streaming=data.streaming, shuffle_seed=data.seed,
    )  # fmt: skip
    dataset = undecoded(dataset, data.image_column)
    collate = ImageCollator(image_transform(model), data.image_column, None,
                            skip_bad_images=data.skip_bad_images)  # fmt: skip
    batches, total = [], 0
    for batch in make_loader(dataset, collate, min(data.batch_size, wanted), data.num_workers):
        pixels = batch["pixel_values"][: wanted - total]
        batches.append(pixels)
        total += len(pixels)
        if total >= wanted:
            break
    return torch.cat(batches) if batches else torch.empty(0)


def main_decides(accelerator: Accelerator, make: Callable[[], Any]) -> Any:
    """``make()`` run by the main process only and its (picklable) result given to every
    process: what must not differ between them (timings, a plan chosen on one process's
    images). An error on the main process is raised by every process, so none waits for
    a result that never comes."""
    if accelerator.num_processes == 1:
        return make()
    from accelerate.utils import broadcast_object_list

    from ..core.errors import ConfigError

    payload: list[Any] = [None]
    error: BaseException | None = None
    if accelerator.is_main_process:
        try:
            payload = [("done", make())]
        except BaseException as caught:  # told to the others before it is raised here
            error = caught
            payload = [("failed", str(caught).splitlines()[0] if str(caught) else
                        type(caught).__name__)]  # fmt: skip
    broadcast_object_list(payload)
    if error is not None:
        raise error
    outcome, value = payload[0]
    if outcome == "failed":
        raise ConfigError(f"the main process stopped: {value}")
    return value
