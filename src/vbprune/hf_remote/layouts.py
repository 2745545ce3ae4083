"""Where each transformers family keeps its MLP (data only: no imports).

model_type -> (holder module class, fc1 attribute, fc2 attribute, GRN attribute or None).
Module paths as built by transformers 5. Shared by vbprune's adapter and by the
self-contained modeling file saved with pruned models.
"""

MLP_LAYOUTS = {
    "vit": ("ViTMLP", "fc1", "fc2", None),  # vit.layers.{i}.mlp
    "deit": ("DeiTMLP", "fc1", "fc2", None),  # deit.layers.{i}.mlp
    "swin": ("SwinMLP", "fc1", "fc2", None),  # swin.encoder.layers.{s}.blocks.{b}.mlp
    "convnext": ("ConvNextLayer", "pwconv1", "pwconv2", None),
    "convnextv2": ("ConvNextV2Layer", "pwconv1", "pwconv2", "grn"),
}

PRUNED_PREFIX = "vbprune_"  # model_type of a pruned model: vbprune_vit, vbprune_deit, ...


def base_model_type(model_type):
    """The family of a (pruned) model type: ``vbprune_deit_distilled`` -> ``deit``."""
    if model_type and model_type.startswith(PRUNED_PREFIX):
        model_type = model_type[len(PRUNED_PREFIX) :]
        if model_type.endswith("_distilled"):
            model_type = model_type[: -len("_distilled")]
    return model_type
