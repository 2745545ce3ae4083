"""Shared test factories: tiny models of every supported family built from configs (no
download), deterministic weights, generated image folders, hand-counted MACs, and running
the CLI in-process. Fixtures live in conftest.py."""

from __future__ import annotations

import torch

IMAGE = 32  # pixels; every factory below takes (B, 3, 32, 32)


def _timm(name: str, **args):
    """A timm model by name (so it carries its pretrained_cfg), remembering its args as
    vbprune.io.model_specs.load_model does, so that it can be saved and rebuilt."""
    import timm

    model = timm.create_model(name, pretrained=False, **args)
    model.vbprune_model_args = args
    return model


# timm ViT and DeiT take the same arguments
TINY_TIMM_VIT_ARGS = dict(
    img_size=IMAGE, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10
)


def timm_vit():
    return _timm("vit_tiny_patch16_224", **TINY_TIMM_VIT_ARGS)


def timm_deit_distilled():
    return _timm("deit_tiny_distilled_patch16_224", **TINY_TIMM_VIT_ARGS)


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


# ConvNeXt v1 and v2 configs take the same arguments
TINY_HF_CONVNEXT_ARGS = dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 2], num_labels=10)


def hf_convnext():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    return ConvNextForImageClassification(ConvNextConfig(**TINY_HF_CONVNEXT_ARGS))


def hf_convnextv2():
    from transformers import ConvNextV2Config, ConvNextV2ForImageClassification

    return ConvNextV2ForImageClassification(ConvNextV2Config(**TINY_HF_CONVNEXT_ARGS))


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


TINY_TIMM_ARGS = {**TINY_TIMM_VIT_ARGS, "num_classes": 3}  # the trained fixture model


def vit_macs(tokens, dim, hidden_per_block, patches, patch_in, classes):
    """MACs of a timm ViT counted by hand: every matmul, attention products included."""
    total = patches * dim * patch_in + dim * classes  # patch embedding, head (cls token)
    for hidden in hidden_per_block:
        total += tokens * dim * 3 * dim  # qkv
        total += 2 * tokens * tokens * dim  # scores q k^T and the value product
        total += tokens * dim * dim  # projection
        total += 2 * tokens * dim * hidden  # fc1 + fc2
    return total


def run_vbprune(*argv) -> int:
    """``vbprune ARGV`` in this process (arguments may be paths or numbers)."""
    from vbprune.cli import main

    return main([str(a) for a in argv])


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
