"""Argument groups several commands share (standard library and light vbprune only)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..core.compensation import COMPENSATIONS
from ..core.config import SCOPES, PruningConfig
from ..core.criteria import CRITERIA
from ..io.model_specs import MODEL_SPEC_HELP

DTYPES = ("float32", "bfloat16", "float16", "float64")
# calibration images on which `prune --heads` tries each weight of heads against neurons
PROBE_IMAGES = 256
_CONFIG_HELP = {f.name: f.metadata["help"] for f in fields(PruningConfig)}


def default_workers() -> int:
    """Data-loader workers: the CPUs this process may use, at most 4 (more than the
    machine has only makes torch warn and slows the loader down)."""
    import os

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        available = os.cpu_count() or 1
    return max(0, min(4, available))


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (bad values exit with a usage error)."""
    value = int(text)  # a ValueError becomes argparse's "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--model``, ``--pretrained/--no-pretrained`` and ``--dtype``."""
    parser.add_argument("--model", required=required, help=MODEL_SPEC_HELP)
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load trained weights (--no-pretrained: architecture only, random weights "
        "drawn with --seed: the same in every process and run)",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="model precision")


def add_data_arguments(
    parser: argparse.ArgumentParser, required: bool, split: str = "train",
    purpose: str = "calibrate on",
) -> None:  # fmt: skip
    """The dataset, split, sample count and loader options of calibration/evaluation
    (``split``: the default split, which the help says is the one to ``purpose``)."""
    group = parser.add_argument_group("calibration data")
    group.add_argument(
        "--dataset",
        required=required,
        help="Hub dataset id (ImageNet: ILSVRC/imagenet-1k) or a folder ROOT with "
        "ROOT/train/<class>/* and ROOT/val/<class>/*",
    )
    group.add_argument("--split", default=split, help=f"split to {purpose}")
    group.add_argument("--num-samples", type=positive_int, help="images (default: all)")
    group.add_argument("--batch-size", type=positive_int, default=64, help="images per step")
    add_num_workers(group)
    group.add_argument("--image-column", default="image", help="dataset column of the images")
    group.add_argument("--label-column", default="label", help="dataset column of the labels")
    group.add_argument("--streaming", action="store_true", help="stream a Hub dataset")
    add_skip_bad_images(group)
    group.add_argument(
        "--seed", type=int, default=0, help="seed of the sampling shuffle and of random draws"
    )


def add_num_workers(parser) -> None:
    """``--num-workers``: its default is what this machine allows (shown by --help)."""
    parser.add_argument(
        "--num-workers", type=non_negative_int, default=default_workers(),
        help="loader worker processes (the CPUs this process may use, at most 4)",
    )  # fmt: skip


def add_skip_bad_images(parser) -> None:
    """``--skip-bad-images``: leave unreadable images out, count them, say which."""
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip truncated or corrupt images (counted and named at the end) instead of "
        "stopping at the first one",
    )


def add_covariance_fraction(parser: argparse.ArgumentParser) -> None:
    """``--covariance-fraction``: estimate the covariance on a share of the tokens."""
    parser.add_argument(
        "--covariance-fraction",
        type=fraction,
        default=1.0,
        help="estimate the covariance from this fraction of each image's tokens, drawn at "
        "random (faster; means, variances and the ranking by variance use every token)",
    )


def add_pruning_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`~vbprune.PruningConfig` options, with the config's own help texts
    (exactly one of ``--ratio``, ``--target-macs``, ``--target-params`` is needed; a
    missing or second one is refused by :func:`pruning_config`, in one line)."""
    group = parser.add_argument_group(
        "pruning (vbprune.PruningConfig; give one of --ratio, --target-macs, --target-params, "
        "--target-speedup, --target-latency)"
    )
    group.add_argument("--ratio", type=float, help=_CONFIG_HELP["ratio"])
    group.add_argument("--target-macs", type=float, metavar="F", help=_CONFIG_HELP["target_macs"])
    group.add_argument(
        "--target-params", type=float, metavar="F", help=_CONFIG_HELP["target_params"]
    )
    group.add_argument(
        "--target-speedup", type=positive_float, metavar="S",
        help="prune until the model runs S times faster, measured on the device it runs on "
        "here (a latency table per site, cached; the plan checked by timing pruned copies)",
    )  # fmt: skip
    group.add_argument(
        "--target-latency", type=positive_float, metavar="MS", dest="target_latency_ms",
        help="prune until one forward of --latency-batch images takes MS milliseconds here",
    )  # fmt: skip
    group.add_argument(
        "--latency-batch", type=positive_int, metavar="N",
        help="images per forward of --target-speedup/--target-latency (default 1)",
    )  # fmt: skip
    group.add_argument(
        "--heads", action="store_true",
        help=_CONFIG_HELP["heads"] + " (--stats must come from `vbprune calibrate --heads`)",
    )  # fmt: skip
    group.add_argument("--head-weight", type=float, metavar="W", help=_head_weight_help())
    group.add_argument("--scope", choices=SCOPES, default="global", help=_CONFIG_HELP["scope"])
    group.add_argument("--round-to", type=int, default=1, help=_CONFIG_HELP["round_to"])
    group.add_argument("--min-keep", type=int, default=1, help=_CONFIG_HELP["min_keep"])
    group.add_argument("--criterion", choices=list(CRITERIA), help=_CONFIG_HELP["criterion"])
    group.add_argument(
        "--compensate",
        nargs="?",
        choices=list(COMPENSATIONS),
        const="mean",
        default="mean",
        help=_CONFIG_HELP["compensate"] + " (with --dataset, ls and --criterion obs "
        "calibrate with the covariance themselves)",
    )
    group.add_argument(
        "--no-compensate",
        dest="compensate",
        action="store_const",
        const="none",
        help="the same as --compensate none (the ablation)",
    )


def _head_weight_help() -> str:
    """The config's help of ``head_weight``, saying which images the command tries it on."""
    text = _CONFIG_HELP["head_weight"]
    images = (f"on up to {PROBE_IMAGES} images of the calibration split of --dataset; with "
              "--stats and no --dataset, ")  # fmt: skip
    if "given images; else " in text:
        return text.replace("given images; else ", images)
    return text + f" (tried {images}the default)"


def _option(name: str) -> str:
    """``target_macs`` -> ``--target-macs``: a config field as typed."""
    return f"--{name.replace('_', '-')}"


def pruning_config(args: argparse.Namespace) -> PruningConfig:
    """The validated :class:`~vbprune.PruningConfig` of parsed pruning arguments; an
    error names the option as typed (``--round-to``, not ``round_to``).

    Raises:
        ConfigError: none or several of ``--ratio``, ``--target-macs``,
            ``--target-params``, ``--target-speedup``, ``--target-latency``;
            ``--head-weight`` without ``--heads``; a value out of range.

    ``--target-speedup S`` is ``target_latency=1/S``; ``--target-latency MS`` gives
    ``target_latency=1.0`` until the command has timed the dense model
    (:func:`latency_share` then gives the share).
    """
    from ..core.errors import ConfigError, OptionTypeError

    options = {"--ratio": "ratio", "--target-macs": "target_macs",
               "--target-params": "target_params", "--target-speedup": "target_speedup",
               "--target-latency": "target_latency_ms"}  # fmt: skip
    given = [flag for flag, dest in options.items() if getattr(args, dest, None) is not None]
    if len(given) != 1:
        raise ConfigError(
            f"give exactly one of {', '.join(options)}"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    latency = None
    if given[0] == "--target-speedup":
        if not args.target_speedup > 1:
            raise ConfigError(f"--target-speedup must be above 1, got {args.target_speedup:g}")
        latency = 1 / args.target_speedup
    elif given[0] == "--target-latency":
        latency = 1.0  # stands in until the command has timed the dense model
    batch = getattr(args, "latency_batch", None)
    if batch is not None and latency is None:
        raise ConfigError("--latency-batch is the batch of --target-speedup or "
                          "--target-latency: it needs one of them")  # fmt: skip
    if args.head_weight is not None and not args.heads:
        raise ConfigError("--head-weight weighs heads against neurons: it needs --heads")
    try:
        return PruningConfig(
            ratio=args.ratio, target_macs=args.target_macs, target_params=args.target_params,
            target_latency=latency, latency_batch=batch, heads=args.heads,
            head_weight=args.head_weight, scope=args.scope, min_keep=args.min_keep,
            round_to=args.round_to, compensate=args.compensate, criterion=args.criterion,
            seed=args.seed,
        )  # fmt: skip
    except (ConfigError, OptionTypeError) as error:
        message = str(error)
        field = message.split(" ", 1)[0]
        if field in _CONFIG_HELP:  # "round_to must be ..." -> "--round-to must be ..."
            message = _option(field) + message[len(field) :]
        raise type(error)(message) from None


def latency_share(milliseconds: float, dense_seconds: float, table) -> float:
    """The share of the dense model's latency (``dense_seconds``, timed now; ``table``:
    its :class:`~vbprune.LatencyTable`, for the device and batch) that
    ``--target-latency MS`` asks for.

    Raises:
        ConfigError: when the dense model is already as fast.
    """
    from ..core.errors import ConfigError

    dense = dense_seconds * 1e3
    if milliseconds >= dense:
        raise ConfigError(
            f"--target-latency {milliseconds:g} ms: the dense model already takes {dense:.3g} "
            f"ms per batch of {table.batch_size} on {table.device}"
        )
    return milliseconds / dense
