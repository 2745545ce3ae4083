"""A small trained network made from scikit-learn's bundled digits: no download needed.

The 1,797 8x8 digit images ship with scikit-learn. A tiny ViT trained on them for a few
seconds is a real trained network on which pruning and recovery can be shown and tested
(``vbprune demo``, ``vbprune sweep``, the tests and benchmarks). Private: not API.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .io.checkpoint import from_pretrained, save_pretrained

DIGITS_VIT_ARGS = dict(
    img_size=8, patch_size=2, in_chans=1, embed_dim=64, depth=4, num_heads=4, num_classes=10
)


def load_digits_tensors(test_fraction: float = 0.2, seed: int = 0):
    """``(train_x, train_y, test_x, test_y)``: images ``(N, 1, 8, 8)`` in [-1, 1], labels.

    Raises:
        MissingDependencyError: (an ``ImportError``) if scikit-learn is not installed
            (``pip install "vbprune[demo]"``).
    """
    from ._extras import require

    load_digits = require("sklearn.datasets", "demo", "the digits demo").load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N,1,8,8)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(len(labels) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def digits_vit(seed: int = 0) -> nn.Module:
    """An untrained timm ViT for 8x8 digits (4 blocks, MLP width 256)."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **DIGITS_VIT_ARGS)
    model.vbprune_model_args = dict(DIGITS_VIT_ARGS)
    # its images are tensors in [-1, 1] already (one channel): no normalisation; with the
    # name's ImageNet mean and std (three channels) timm warns at every save
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (1, 8, 8), "mean": (0.0,),
                            "std": (1.0,), "num_classes": 10}  # fmt: skip
    return model


def train_classifier(
    model: nn.Module, images, labels, epochs: int = 15, lr: float = 3e-3, batch_size: int = 64,
    seed: int = 0,
) -> nn.Module:  # fmt: skip
    """Plain cross-entropy training with AdamW (a few seconds on a CPU for digits)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, images, labels) -> float:
    """Top-1 accuracy of ``model`` on tensors (moved to the model's device)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = model.eval()(images.to(device)).argmax(-1).cpu()
    return float((predicted == labels).float().mean())


class TensorImageDataset(torch.utils.data.Dataset):
    """Image and label tensors as the ``{"pixel_values", "labels"}`` items Trainer expects."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[index], "labels": self.labels[index]}


def _cache_dir() -> Path:
    root = os.environ.get("VBPRUNE_CACHE") or Path.home() / ".cache" / "vbprune"
    return Path(root) / "digits-vit"


def trained_digits_vit(train_x, train_y) -> nn.Module:
    """The digits ViT: loaded from the cache, or trained (about 15 s on 2 cores) and cached."""
    cache = _cache_dir()
    if (cache / "model.safetensors").is_file():
        return from_pretrained(cache)
    model = train_classifier(digits_vit(), train_x, train_y, epochs=15)
    save_pretrained(model, cache, metadata={"base_model": "vbprune digits ViT"}, overwrite=True)
    return model
