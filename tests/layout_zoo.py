"""Small models of every family the layout table covers (random weights, 32-64 px).

``TIMM_ZOO``: timm name -> creation arguments; ``HF_ZOO``: transformers model type ->
(model class, config arguments). Every layout row has at least one model here.
"""

from __future__ import annotations

VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)

TIMM_ZOO: dict[str, dict] = {
    "deit3_small_patch16_224": VIT,  # layer scale after fc2
    "cait_xxs24_224": dict(VIT, depth_token_only=1),
    "beit_base_patch16_224": VIT,
    "eva02_tiny_patch14_224": dict(VIT, patch_size=8),  # SwiGLU packed (GluMlp)
    "eva02_base_patch14_224": dict(VIT, patch_size=8),  # SwiGLU + hidden LayerNorm
    "vit_small_patch14_dinov2": dict(VIT, patch_size=8),
    "vit_giant_patch14_dinov2": dict(VIT, patch_size=8),  # SwiGLU packed
    "aimv2_large_patch14_224": dict(VIT, patch_size=8),  # SwiGLU, separate gate and value
    "vitamin_small_224": dict(img_size=64, num_classes=5),  # GeGLU
    "vit_small_patch16_rope_224": VIT,  # rotary attention (timm AttentionRope)
    "swin_tiny_patch4_window7_224": dict(  # window attention with a per-head table
        img_size=32, window_size=4, embed_dim=16, depths=(1, 2), num_heads=(2, 2), num_classes=5
    ),
    "swinv2_tiny_window8_256": dict(
        img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5
    ),
    "swinv2_cr_tiny_224": dict(
        img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5
    ),
    "levit_128s": dict(
        img_size=64, embed_dim=(32, 48), key_dim=8, num_heads=(2, 3), depth=(1, 1), num_classes=5
    ),
    "levit_conv_128s": dict(
        img_size=64, embed_dim=(32, 48), key_dim=8, num_heads=(2, 3), depth=(1, 1), num_classes=5
    ),
    "pvt_v2_b0": dict(
        embed_dims=(16, 32),
        depths=(1, 1),
        num_heads=(1, 2),
        sr_ratios=(2, 1),
        mlp_ratios=(4, 4),
        num_classes=5,
    ),
    "mixer_s16_224": dict(img_size=32, num_classes=5),
    "resmlp_12_224": dict(img_size=32, num_classes=5),
    "efficientformer_l1": dict(num_classes=5),  # 224 px only
    "efficientformerv2_s0": dict(num_classes=5),  # 224 px only
    "fastvit_t8": dict(num_classes=5),
    "coatnet_0_rw_224": dict(img_size=64, num_classes=5),
    "maxvit_tiny_rw_224": dict(img_size=64, num_classes=5),
    "poolformer_s12": dict(num_classes=5),
    "convformer_s18": dict(num_classes=5),
    "caformer_s18": dict(num_classes=5),
    "twins_svt_small": dict(
        img_size=32,
        embed_dims=(16, 32),
        depths=(1, 1),
        num_heads=(1, 2),
        mlp_ratios=(4, 4),
        sr_ratios=(2, 1),
        wss=(2, 2),
        num_classes=5,
    ),
    "xcit_nano_12_p16_224": dict(img_size=32, embed_dim=32, depth=2, num_heads=2, num_classes=5),
    "crossvit_tiny_240": dict(num_classes=5),  # 240 px only
    "edgenext_xx_small": dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48), num_classes=5),
    "hiera_tiny_224": dict(
        img_size=64, embed_dim=16, num_heads=1, stages=(1, 1, 1, 1), num_classes=5
    ),
    "tiny_vit_5m_224": dict(
        embed_dims=(16, 32, 32, 48),
        depths=(1, 1, 1, 1),
        num_heads=(1, 2, 2, 3),
        window_sizes=(2, 2, 2, 2),
        num_classes=5,
    ),
    "davit_tiny": dict(
        depths=(1, 1, 1, 1), embed_dims=(16, 32, 32, 48), num_heads=(1, 2, 2, 3), num_classes=5
    ),
    "focalnet_tiny_srf": dict(num_classes=5),
    "nest_tiny": dict(img_size=64, num_classes=5),
    "pit_ti_224": dict(img_size=64, num_classes=5),
    "mobilevit_xxs": dict(num_classes=5),
    "convnextv2_atto": dict(num_classes=5),  # Global Response Norm
    "inception_next_atto": dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48), num_classes=5),
    "efficientvim_m1": dict(num_classes=5),
    "efficientvit_m0": dict(img_size=64, num_classes=5),  # ConvMlp of pw1/pw2
    "shvit_s1": dict(num_classes=5),
    "iformer_t": dict(num_classes=5),
    "repvit_m0_9": dict(num_classes=5),
    "fasternet_t0": dict(num_classes=5),
    "gemma4_vit_167m": dict(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5
    ),
    "starnet_s1": dict(num_classes=5),  # gated 1x1-conv MLP in a block named Block
    "efficientvit_b0": dict(num_classes=5),  # MBConv: strided depthwise conv in some
    "lowformer_b0": dict(num_classes=5),
    "mobilenetv2_050": dict(num_classes=5),  # inverted residuals, no squeeze-excite
    "mobilenetv4_conv_small": dict(num_classes=5),
    "test_vit_relpos": dict(img_size=32, num_classes=5),  # position-bias MLP left alone
}

# input side of models that take only one size (default: img_size, else 64 px)
TIMM_INPUT = {"efficientformer_l1": 224, "efficientformerv2_s0": 224, "crossvit_tiny_240": 240}

HF_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=64, image_size=32, patch_size=8, num_labels=5)  # fmt: skip
HF_STAGES = dict(embed_dim=16, depths=[1, 1], num_heads=[1, 2], image_size=32,
                 patch_size=4, window_size=4, num_labels=5)  # fmt: skip

# PVTv2 and SegFormer: two stages of Mix-FFN blocks (depthwise conv between fc1 and fc2)
MIX_FFN = dict(hidden_sizes=[16, 32], depths=[1, 1], num_attention_heads=[1, 2],
               sr_ratios=[2, 1], num_encoder_blocks=2, patch_sizes=[7, 3], strides=[4, 2],
               mlp_ratios=[4, 4], num_labels=5)  # fmt: skip

HF_ZOO: dict[str, tuple[str, dict]] = {
    "vit": ("ViTForImageClassification", HF_VIT),
    "deit": ("DeiTForImageClassification", HF_VIT),
    "vit_msn": ("ViTMSNForImageClassification", HF_VIT),
    "ijepa": ("IJepaForImageClassification", HF_VIT),
    "beit": ("BeitForImageClassification", dict(HF_VIT, use_layerscale=True)),
    "data2vec-vision": ("Data2VecVisionForImageClassification", HF_VIT),
    "dinov2": ("Dinov2ForImageClassification", HF_VIT),
    "dinov2-swiglu": ("Dinov2ForImageClassification", dict(HF_VIT, use_swiglu_ffn=True)),
    "clip": (
        "CLIPForImageClassification",
        dict(
            vision_config=dict(HF_VIT),
            text_config=dict(
                hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
            ),
            num_labels=5,
        ),
    ),
    "siglip": (
        "SiglipForImageClassification",
        dict(
            vision_config=dict(HF_VIT),
            text_config=dict(
                hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
            ),
            num_labels=5,
        ),
    ),
    "swin": ("SwinForImageClassification", HF_STAGES),
    "swinv2": ("Swinv2ForImageClassification", HF_STAGES),
    "donut-swin": ("DonutSwinForImageClassification", HF_STAGES),
    "focalnet": (
        "FocalNetForImageClassification",
        dict(embed_dim=16, depths=[1, 1], image_size=32, patch_size=4, num_labels=5),
    ),
    "hiera": (
        "HieraForImageClassification",
        dict(
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 2, 2, 2],
            image_size=[64, 64],
            num_labels=5,
        ),
    ),
    "convnext": (
        "ConvNextForImageClassification",
        dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=32, num_labels=5),
    ),
    "convnextv2": (
        "ConvNextV2ForImageClassification",
        dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=32, num_labels=5),
    ),
    "pvt_v2": (
        "PvtV2ForImageClassification",
        MIX_FFN,
    ),
    "segformer": (
        "SegformerForImageClassification",
        MIX_FFN,
    ),
    "levit": (
        "LevitForImageClassification",
        dict(
            image_size=64,
            hidden_sizes=[32, 48],
            num_attention_heads=[2, 3],
            depths=[1, 1],
            key_dim=[8, 8],
            drop_path_rate=0,
            mlp_ratio=[2, 2],
            attention_ratio=[2, 2],
            down_ops=[["Subsample", 8, 2, 4, 2, 2]],
            num_labels=5,
        ),
    ),
    "poolformer": (
        "PoolFormerForImageClassification",
        dict(
            hidden_sizes=[16, 32],
            depths=[1, 1],
            num_encoder_blocks=2,
            patch_sizes=[7, 3],
            strides=[4, 2],
            padding=[2, 1],
            num_labels=5,
        ),
    ),
    "cvt": (
        "CvtForImageClassification",
        dict(embed_dim=[16, 32, 48], depth=[1, 2, 3], num_heads=[1, 2, 3], num_labels=5),
    ),
    "pvt": (
        "PvtForImageClassification",
        dict(
            hidden_sizes=[16, 32],
            depths=[1, 1],
            num_attention_heads=[1, 2],
            sequence_reduction_ratios=[2, 1],
            num_encoder_blocks=2,
            patch_sizes=[4, 2],
            strides=[4, 2],
            mlp_ratios=[4, 4],
            image_size=32,
            num_labels=5,
        ),
    ),
    "mobilevit": (
        "MobileViTForImageClassification",
        dict(
            image_size=64,
            hidden_sizes=[16, 24, 32],
            neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 48],
            num_labels=5,
        ),
    ),
    "mobilevitv2": (
        "MobileViTV2ForImageClassification",
        dict(image_size=64, width_multiplier=0.5, num_labels=5),
    ),
    "perceiver": (
        "PerceiverForImageClassificationLearned",
        dict(
            num_latents=8,
            d_latents=32,
            d_model=32,
            num_blocks=1,
            num_self_attends_per_block=1,
            num_self_attention_heads=2,
            num_cross_attention_heads=1,
            image_size=32,
            num_labels=5,
        ),
    ),
    "timm_wrapper": (  # a timm model inside transformers: matched by the timm rows
        "TimmWrapperForImageClassification",
        dict(
            architecture="vit_tiny_patch16_224",
            num_labels=5,
            model_args=dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
        ),
    ),
    "swiftformer": (
        "SwiftFormerForImageClassification",
        dict(depths=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], num_labels=5),
    ),
}
