"""Pruned ViT, DeiT, Swin, ConvNeXt and ConvNeXtV2 image classifiers (vbprune).

Variance-Based Pruning removes MLP hidden neurons, so every block has its own MLP width.
Each class here is the stock transformers class whose MLPs are resized to the widths in
``config.mlp_widths`` (one per MLP, in forward order) before the weights load; configs
written by vbprune 0.1 name them ``mlp_hidden_sizes``.
This file and ``layouts.py`` import only torch and transformers: they are saved next to
the weights, and ``trust_remote_code=True`` loads the model without vbprune installed.
"""

import torch
from torch import nn
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextV2Config,
    ConvNextV2ForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

from .layouts import MLP_LAYOUTS, base_model_type


def resize_mlps(model: nn.Module, widths) -> None:
    """Give the model's MLPs the hidden ``widths`` (forward order); weights load after."""
    holder, fc1_name, fc2_name, grn_name = MLP_LAYOUTS[base_model_type(model.config.model_type)]
    holders = [m for m in model.modules() if type(m).__name__ == holder]
    widths = list(widths)
    if len(widths) != len(holders):
        raise ValueError(
            f"config.mlp_widths has {len(widths)} widths, the model has {len(holders)} MLPs"
        )
    for module, width in zip(holders, widths):
        fc1, fc2 = getattr(module, fc1_name), getattr(module, fc2_name)
        factory = {"device": fc1.weight.device, "dtype": fc1.weight.dtype}
        setattr(module, fc1_name, nn.Linear(fc1.in_features, width, **factory))
        # fc2 always has a bias here: the removed neurons' mean is folded into it
        setattr(module, fc2_name, nn.Linear(width, fc2.out_features, **factory))
        if grn_name is not None:
            grn = getattr(module, grn_name)
            shape = (*grn.weight.shape[:-1], width)  # (1, 1, 1, H)
            grn.weight = nn.Parameter(torch.zeros(shape, **factory))
            grn.bias = nn.Parameter(torch.zeros(shape, **factory))


class _Pruned:
    """Mixin: build the stock model, then resize its MLPs to the recorded widths."""

    def __init__(self, config):
        super().__init__(config)
        widths = getattr(config, "mlp_widths", None) or getattr(config, "mlp_hidden_sizes", None)
        if widths:
            resize_mlps(self, widths)


class VBPruneViTConfig(ViTConfig):
    model_type = "vbprune_vit"
    mlp_widths: list[int] | None = None


class VBPruneViTForImageClassification(_Pruned, ViTForImageClassification):
    config_class = VBPruneViTConfig


class VBPruneDeiTConfig(DeiTConfig):
    model_type = "vbprune_deit"
    mlp_widths: list[int] | None = None


class VBPruneDeiTForImageClassification(_Pruned, DeiTForImageClassification):
    config_class = VBPruneDeiTConfig


class VBPruneDeiTDistilledConfig(DeiTConfig):
    model_type = "vbprune_deit_distilled"
    mlp_widths: list[int] | None = None


class VBPruneDeiTForImageClassificationWithTeacher(_Pruned, DeiTForImageClassificationWithTeacher):
    config_class = VBPruneDeiTDistilledConfig


class VBPruneSwinConfig(SwinConfig):
    model_type = "vbprune_swin"
    mlp_widths: list[int] | None = None


class VBPruneSwinForImageClassification(_Pruned, SwinForImageClassification):
    config_class = VBPruneSwinConfig


class VBPruneConvNextConfig(ConvNextConfig):
    model_type = "vbprune_convnext"
    mlp_widths: list[int] | None = None


class VBPruneConvNextForImageClassification(_Pruned, ConvNextForImageClassification):
    config_class = VBPruneConvNextConfig


class VBPruneConvNextV2Config(ConvNextV2Config):
    model_type = "vbprune_convnextv2"
    mlp_widths: list[int] | None = None


class VBPruneConvNextV2ForImageClassification(_Pruned, ConvNextV2ForImageClassification):
    config_class = VBPruneConvNextV2Config


# stock class name -> (pruned config class, pruned model class)
PRUNED_CLASSES = {
    "ViTForImageClassification": (VBPruneViTConfig, VBPruneViTForImageClassification),
    "DeiTForImageClassification": (VBPruneDeiTConfig, VBPruneDeiTForImageClassification),
    "DeiTForImageClassificationWithTeacher": (
        VBPruneDeiTDistilledConfig,
        VBPruneDeiTForImageClassificationWithTeacher,
    ),
    "SwinForImageClassification": (VBPruneSwinConfig, VBPruneSwinForImageClassification),
    "ConvNextForImageClassification": (
        VBPruneConvNextConfig,
        VBPruneConvNextForImageClassification,
    ),
    "ConvNextV2ForImageClassification": (
        VBPruneConvNextV2Config,
        VBPruneConvNextV2ForImageClassification,
    ),
}
