"""Tiny models of every supported family, built from configs (no download)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

IMAGE = 32  # pixels; every factory below takes (B, 3, 32, 32)


def _timm(name: str, **args):
    """A timm model by name (so it carries its pretrained_cfg), remembering its args as
    vbprune.models.load_model does, so that it can be saved and rebuilt."""
    import timm

    model = timm.create_model(name, pretrained=False, **args)
    model.vbprune_model_args = args
    return model


def timm_vit():
    return _timm(
        "vit_tiny_patch16_224",
        img_size=IMAGE,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=10,
    )


def timm_deit_distilled():
    return _timm(
        "deit_tiny_distilled_patch16_224",
        img_size=IMAGE,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=10,
    )


def timm_swin():
    return _timm(
        "swin_tiny_patch4_window7_224",
        img_size=IMAGE,
        patch_size=4,
        window_size=4,
        embed_dim=16,
        depths=(1, 2),
        num_heads=(1, 2),
        num_classes=10,
    )


def timm_convnext(conv_mlp: bool = False, use_grn: bool = False):
    return _timm(
        "convnext_tiny",
        depths=(1, 2, 1, 1),
        dims=(8, 16, 16, 16),
        conv_mlp=conv_mlp,
        use_grn=use_grn,
        ls_init_value=None if use_grn else 1e-6,
        num_classes=10,
    )


# ViT and DeiT configs take the same arguments
TINY_HF_VIT_ARGS = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=IMAGE,
    patch_size=8,
    num_labels=10,
)


def hf_vit(attn_implementation: str | None = None):
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(**TINY_HF_VIT_ARGS)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return ViTForImageClassification(config)


def hf_deit():
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    return DeiTForImageClassificationWithTeacher(DeiTConfig(**TINY_HF_VIT_ARGS))


def hf_swin():
    from transformers import SwinConfig, SwinForImageClassification

    return SwinForImageClassification(
        SwinConfig(
            image_size=IMAGE,
            patch_size=4,
            window_size=4,
            embed_dim=16,
            depths=[1, 2],
            num_heads=[1, 2],
            num_labels=10,
        )
    )


def hf_convnext():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    return ConvNextForImageClassification(
        ConvNextConfig(
            num_stages=2,
            hidden_sizes=[8, 16],
            depths=[1, 2],
            num_labels=10,
        )
    )


def hf_convnextv2():
    from transformers import ConvNextV2Config, ConvNextV2ForImageClassification

    return ConvNextV2ForImageClassification(
        ConvNextV2Config(
            num_stages=2,
            hidden_sizes=[8, 16],
            depths=[1, 2],
            num_labels=10,
        )
    )


FAMILIES = {
    "timm-vit": timm_vit,
    "timm-deit-distilled": timm_deit_distilled,
    "timm-swin": timm_swin,
    "timm-convnext": timm_convnext,
    "timm-convnext-convmlp": lambda: timm_convnext(conv_mlp=True),
    "timm-convnextv2": lambda: timm_convnext(use_grn=True),
    "timm-convnextv2-convmlp": lambda: timm_convnext(conv_mlp=True, use_grn=True),
    "hf-vit": hf_vit,
    "hf-deit": hf_deit,
    "hf-swin": hf_swin,
    "hf-convnext": hf_convnext,
    "hf-convnextv2": hf_convnextv2,
}


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every 1-D parameter and layer scale a non-trivial value, so logits depend
    visibly on every MLP (default inits put layer scale at 1e-6 and heads at zero).
    GRN weights stay zero: only then is the fold exact for ConvNeXt v2."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "grn" in name and name.endswith("weight"):
                p.zero_()
            elif p.dim() == 1 or "layer_scale" in name or name.endswith("gamma"):
                centre = 0.0 if name.endswith("bias") else 1.0
                p.copy_(centre + 0.1 * torch.randn(p.shape, generator=generator))
            elif "grn" in name:  # transformers' (1, 1, 1, H) GRN bias
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            elif p.dim() >= 2 and ("classifier" in name or "head" in name):
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval()


def logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(images)
    return out if isinstance(out, torch.Tensor) else out.logits


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.fixture
def images():
    return torch.randn(4, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


def write_image_folder(root, per_class=(7, 3), classes=("cat", "dog", "eel"), seed=0):
    """An ImageNet-style folder ROOT/{train,val}/<class>/<i>.png of random images; each
    class has its own mean colour, so a classifier can tell them apart."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.normal(60 + 60 * index, 30, (40, 48, 3)).clip(0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """21 training and 9 validation images in 3 classes (21 divides by neither 2 nor 4)."""
    return write_image_folder(tmp_path_factory.mktemp("images"))


TINY_TIMM_ARGS = dict(
    img_size=IMAGE, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=3
)


def vit_macs(tokens, dim, hidden_per_block, patches, patch_in, classes):
    """MACs of a timm ViT counted by hand: every matmul, attention products included."""
    total = patches * dim * patch_in + dim * classes  # patch embedding, head (cls token)
    for hidden in hidden_per_block:
        total += tokens * dim * 3 * dim  # qkv
        total += 2 * tokens * tokens * dim  # scores q k^T and the value product
        total += tokens * dim * dim  # projection
        total += 2 * tokens * dim * hidden  # fc1 + fc2
    return total


@pytest.fixture(scope="session")
def timm_model_dir(tmp_path_factory, image_folder):
    """A tiny timm ViT trained briefly on ``image_folder`` (so top-1 means something),
    saved in timm's own format (what `local-dir:` and the Hub hold)."""
    import timm
    from PIL import Image
    from timm.models import save_for_hf

    from vbprune.data import image_transform

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_TIMM_ARGS)
    transform = image_transform(model)
    images, labels = [], []
    for label, class_dir in enumerate(sorted((image_folder / "train").iterdir())):
        for path in sorted(class_dir.iterdir()):
            images.append(transform(Image.open(path).convert("RGB")))
            labels.append(label)
    images, labels = torch.stack(images), torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("models") / "tiny-vit"
    save_for_hf(model, str(path), model_args=TINY_TIMM_ARGS, safe_serialization=True)
    return path


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    """Point huggingface_hub at a fresh LocalHub and a temporary HF_HOME; yield the endpoint.

    huggingface_hub reads its settings into module constants at import time (and other tests may
    have imported it already), so the constants are patched as well as the environment."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager

    home = tmp_path / "hf_home"
    cache = home / "hub"
    from hub_server import LocalHub

    with LocalHub() as hub:
        endpoint = hub.endpoint
        settings = {
            "HF_ENDPOINT": endpoint,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "hf_local_test_token",  # never send a real token; whoami needs one
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        patches = {
            "ENDPOINT": endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_OFFLINE": False,
        }
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value)
        # Copies taken at import time: the module-level HfApi behind huggingface_hub.create_repo,
        # upload_folder, ... and the default cache of scan_cache_dir.
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
        monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(cache))
        yield endpoint


def run_vbprune(*argv) -> int:
    """``vbprune ARGV`` in this process (arguments may be paths or numbers)."""
    from vbprune.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def prune_output(tmp_path_factory, image_folder, timm_model_dir):
    """`vbprune prune` of the trained tiny ViT at ratio 0.5 with top-1 on val, run once."""
    out = tmp_path_factory.mktemp("prune") / "pruned"
    code = run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--ratio", 0.5, "--eval-split", "val", "--num-workers", 0,
                       "--output", out)  # fmt: skip
    assert code == 0
    return out


def manual_top1(model, folder):
    """Top-1 of ``model`` on ImageNet-style ``folder``/<class>/*, one image at a time."""
    from PIL import Image

    from vbprune.data import image_transform

    transform, correct, total = image_transform(model), 0, 0
    for label, class_dir in enumerate(sorted(p for p in folder.iterdir())):
        for image_path in sorted(class_dir.iterdir()):
            pixels = transform(Image.open(image_path).convert("RGB"))[None]
            with torch.no_grad():
                correct += int(model(pixels).argmax(-1).item() == label)
            total += 1
    return correct / total, total
