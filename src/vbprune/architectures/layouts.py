"""The table of MLP layouts: where fc1, fc2 and the per-channel modules between them are.

One row per MLP module class (of timm or transformers), never per model: every model built
from these classes is supported. A row names attribute paths relative to the MLP module:

- ``fc1``: the expanding projection; for a gated MLP ``act(gate(x)) * up(x)`` the pair
  ``(gate, up)``, or one layer holding both halves with ``packed=True``.
- ``fc2``: the projection back (its input is what calibration records).
- ``channels``: modules between them that act per hidden channel and must be sliced
  too (BatchNorm, depthwise convolution, a hidden LayerNorm or Global Response Norm).
  A path that is absent, ``None`` or ``nn.Identity`` on a given model is skipped.

Whatever stands before fc1 (an input norm) or after fc2 (layer-scale, an output
BatchNorm) needs no row: the fold stays exact. Adding a layout is adding a row here and
a small model to ``tests/layout_zoo.py``; :func:`vbprune.evaluation.probe.probe`
verifies it (``tests/test_layouts.py`` runs it on every zoo model).

This file is data: it imports neither timm nor transformers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MLPLayout:
    """One row of the table: how an MLP module class is laid out.

    Attributes:
        library: ``"timm"`` or ``"transformers"`` (the top package of the class's module).
        classes: Class names this row applies to (copies of one design in several models).
        fc1: Path of the expanding layer, or ``(gate, up)`` for a gated MLP with two.
        fc2: Path of the projecting layer.
        channels: Paths of per-hidden-channel modules between fc1 and fc2.
        packed: fc1 holds both halves of a gated MLP (neuron ``j`` is rows ``j`` and
            ``j + width``).
        note: What the row covers, for the docs and error messages.
        fc2_norm: Path of a BatchNorm right after fc2, if any: a bias-free fc2's fold
            goes into its running mean (kept by conv+BN fusion), not into a new bias.
        strict: A module of this class that does not fit makes the model unsupported.
            ``False`` for generic class names (``Block``, ``MBConv``) that other designs
            share: a module that does not fit is simply not this layout.
    """

    library: str
    classes: tuple[str, ...]
    fc1: str | tuple[str, str]
    fc2: str
    channels: tuple[str, ...] = ()
    packed: bool = False
    note: str = ""
    fc2_norm: str | None = None
    strict: bool = True

    @property
    def fc1_paths(self) -> tuple[str, ...]:
        """The expanding layer paths: one, or ``(gate, up)``."""
        return (self.fc1,) if isinstance(self.fc1, str) else tuple(self.fc1)

    @property
    def key(self) -> str:
        """A short name of the row: ``timm/Mlp``."""
        return f"{self.library}/{self.classes[0]}"


_T = "timm"
_HF = "transformers"

LAYOUTS: tuple[MLPLayout, ...] = (
    # --- timm ---------------------------------------------------------------------
    MLPLayout(_T, ("Mlp",), "fc1", "fc2", ("norm",),
              note="timm's shared MLP (ViT, DeiT(-III), Swin(V2), BEiT, EVA, CaiT, DINOv2, "
                   "Mixer, ResMLP, MaxViT, MetaFormers, ...); norm: hidden LayerNorm"),
    MLPLayout(_T, ("SwiGLU",), ("fc1_g", "fc1_x"), "fc2", ("norm",),
              note="SwiGLU with separate gate and value projections (EVA02, AIMv2, ...)"),
    MLPLayout(_T, ("GluMlp",), "fc1", "fc2", ("norm",), packed=True,
              note="GLU / SwiGLUPacked: gate and value halves of one fc1 (DINOv2 SwiGLU)"),
    MLPLayout(_T, ("GeGluMlp",), ("w0", "w1"), "w2", note="ViTamin GeGLU (input norm)"),
    MLPLayout(_T, ("GlobalResponseNormMlp",), "fc1", "fc2", ("grn",),
              note="ConvNeXt-V2 MLP with Global Response Norm"),
    MLPLayout(_T, ("ConvMlp",), "fc1", "fc2", ("norm",),
              note="1x1-conv MLPs (CoAtNet, InceptionNeXt, FastViT, Twins-like stages)"),
    MLPLayout(_T, ("NormMlp",), "fc1", "fc2", note="TinyViT (norm on the input)"),
    MLPLayout(_T, ("MlpWithDepthwiseConv",), "fc1", "fc2", ("dwconv",),
              note="PVTv2 Mix-FFN: depthwise 3x3 conv between fc1 and the activation"),
    MLPLayout(_T, ("LevitMlp",), "ln1.linear", "ln2.linear", ("ln1.bn",),
              note="LeViT: Linear/Conv + BatchNorm", fc2_norm="ln2.bn"),
    MLPLayout(_T, ("ConvMlpWithNorm",), "fc1.conv", "fc2.conv", ("fc1.bn", "mid.conv", "mid.bn"),
              note="EfficientFormerV2: 1x1 conv + BN, optional depthwise 3x3 + BN",
              fc2_norm="fc2.bn"),
    MLPLayout(_T, ("ConvMlpWithNorm",), "fc1", "fc2", ("norm1",),
              note="EfficientFormer v1: 1x1 conv, BatchNorm, act, 1x1 conv, BatchNorm",
              fc2_norm="norm2"),
    MLPLayout(_T, ("ConvMlp",), "pw1.conv", "pw2.conv", ("pw1.bn",),
              note="EfficientViT (MSRA): 1x1 conv + BatchNorm", fc2_norm="pw2.bn"),
    MLPLayout(_T, ("FFN",), "fc1.conv", "fc2.conv", ("fc1.norm",), note="EfficientViM",
              fc2_norm="fc2.norm"),
    MLPLayout(_T, ("FFN",), "pw1.c", "pw2.c", ("pw1.bn",), note="SHViT", fc2_norm="pw2.bn"),
    MLPLayout(_T, ("FFN",), "mixer.module.0.c", "mixer.module.2.c", ("mixer.module.0.bn",),
              note="iFormer (residual 1x1 conv + BatchNorm FFN)",
              fc2_norm="mixer.module.2.bn"),
    MLPLayout(_T, ("RepVitMlp",), "conv1.c", "conv2.c", ("conv1.bn",), note="RepViT",
              fc2_norm="conv2.bn"),
    MLPLayout(_T, ("MLPBlock",), "mlp.0", "mlp.3", ("mlp.1",),
              note="FasterNet block: its mlp is Sequential(conv, BatchNorm, act, conv)"),
    MLPLayout(_T, ("Block",), ("f1.conv", "f2.conv"), "g.conv", ("f1.bn", "f2.bn"),
              note="StarNet: act(f1(x)) * f2(x), 1x1 convs", strict=False),
    MLPLayout(_T, ("MBConv",), "inverted_conv.conv", "point_conv.conv",
              ("inverted_conv.norm", "depth_conv.conv", "depth_conv.norm"),
              note="EfficientViT (MIT), LowFormer: 1x1 conv, depthwise conv, 1x1 conv",
              fc2_norm="point_conv.norm", strict=False),
    MLPLayout(_T, ("ResidualBlock",), "main.1", "main.3",
              note="LowFormer MLP: Sequential(norm, 1x1 conv, act, 1x1 conv)", strict=False),
    MLPLayout(_T, ("InvertedResidual",), "conv_pw", "conv_pwl",
              ("bn1", "conv_dw", "bn2", "aa", "se"),
              note="MobileNetV2 / EfficientNet-Lite inverted residual (1x1 expand, BatchNorm, "
                   "depthwise conv, 1x1 project) without squeeze-excite", fc2_norm="bn3"),
    MLPLayout(_T, ("UniversalInvertedResidual",), "pw_exp.conv", "pw_proj.conv",
              ("pw_exp.bn", "dw_mid.conv", "dw_mid.bn", "se"),
              note="MobileNetV4 universal inverted residual without squeeze-excite",
              fc2_norm="pw_proj.bn"),
    MLPLayout(_T, ("Gemma4GatedMlp",), ("gate_proj.linear", "up_proj.linear"),
              "down_proj.linear", note="Gemma 4 vision tower (clamping linears)"),
    # --- transformers ---------------------------------------------------------------
    MLPLayout(_HF, ("ViTMLP", "DeiTMLP", "SwinMLP", "BeitMLP", "CLIPMLP", "SiglipMLP",
                    "Siglip2MLP", "MetaClip2MLP", "Dinov2MLP", "Dinov2WithRegistersMLP",
                    "IJepaMLP", "ViTMSNMLP", "HieraMlp", "FocalNetMlp"),
              "fc1", "fc2", note="transformers' fc1/fc2 MLP classes"),
    MLPLayout(_HF, ("Dinov2SwiGLUFFN", "Dinov2WithRegistersSwiGLUFFN"),
              ("gate_proj", "up_proj"), "down_proj", note="DINOv2 SwiGLU"),
    MLPLayout(_HF, ("Swinv2Layer", "DonutSwinLayer", "Data2VecVisionLayer", "CvtLayer",
                    "MobileViTTransformerLayer"),
              "intermediate.dense", "output.dense",
              note="layers with the MLP split into Intermediate and Output modules"),
    MLPLayout(_HF, ("ConvNextLayer",), "pwconv1", "pwconv2", note="ConvNeXt block"),
    MLPLayout(_HF, ("ConvNextV2Layer",), "pwconv1", "pwconv2", ("grn",),
              note="ConvNeXt-V2 block with Global Response Norm"),
    MLPLayout(_HF, ("PvtFFN",), "dense1", "dense2", note="PVT v1"),
    MLPLayout(_HF, ("PvtV2ConvFeedForwardNetwork",), "dense1", "dense2", ("dwconv.dwconv",),
              note="PVTv2 Mix-FFN (depthwise conv)"),
    MLPLayout(_HF, ("SegformerMixMLP",), "fc1", "fc2", ("dwconv.dwconv",),
              note="SegFormer Mix-FFN (depthwise conv)"),
    MLPLayout(_HF, ("PoolFormerOutput",), "conv1", "conv2", note="PoolFormer (1x1 convs)"),
    MLPLayout(_HF, ("SwiftFormerMlp",), "fc1", "fc2", note="SwiftFormer (input BatchNorm)"),
    MLPLayout(_HF, ("LevitMLPLayer",), "linear_up.linear", "linear_down.linear",
              ("linear_up.batch_norm",), note="LeViT: Linear + BatchNorm",
              fc2_norm="linear_down.batch_norm"),
    MLPLayout(_HF, ("MobileViTV2FFN",), "conv1.convolution", "conv2.convolution",
              ("conv1.normalization",), note="MobileViTV2 (1x1 convs)"),
    MLPLayout(_HF, ("PerceiverMLP",), "dense1", "dense2", note="Perceiver"),
)  # fmt: skip

# Modules that look like MLPs (by class name) but are deliberately left alone: pruning
# them would change a model's outputs or interface, or they are not MLPs at all.
IGNORED: dict[str, str] = {
    "MlpHead": "classifier head (MetaFormer): its hidden units are the pre-logits",
    "MlpClassifierHead": "classifier head (InceptionNeXt)",
    "NormMlpClassifierHead": "classifier head (ConvNeXt, TinyViT, ...)",
    "Qwen3VitPatchMerger": "output projection head (its hidden units are the pre-logits)",
    "DeepseekVitAligner": "output projection head (its hidden units are the pre-logits)",
    "MLPLayerWithBN": "one Linear with BatchNorm (transformers LeViT), not a two-layer MLP",
    "RelPosMlp": "relative position-bias MLP inside attention (input-free, tiny)",
    "GlobalContext": "global-context attention (a squeeze-excite variant) in GC-ResNets",
}

# Attribute names of MLPs that are not feature MLPs: skipped wherever they appear.
IGNORED_ATTRIBUTES: dict[str, str] = {
    "cpb_mlp": "continuous position-bias MLP inside attention (Swin V2); tiny, input-free",
}

# Known MLP classes that cannot be pruned neuron by neuron, and why.
UNPRUNABLE: dict[str, str] = {
    "GatedMlp": "gMLP's gate is a projection over tokens that mixes the two halves",
    "SpatialMlp": "Visformer's grouped (not depthwise) 3x3 conv mixes hidden channels",
    "GatedConvBlock": "MambaOut splits fc1 into gate, identity and conv branches",
    "ImageGPTMLP": "GPT-2 Conv1D layers (transposed weights) are not handled",
    "Gemma3MLP": "the language model of a vision-language model",
}


# Modules that can stand between fc1 and fc2 but make the neurons inseparable.
UNPRUNABLE_CHANNELS: dict[str, str] = {
    name: "squeeze-excite between fc1 and fc2 pools every hidden channel into its gate"
    for name in ("SqueezeExcite", "SEModule", "EffectiveSEModule", "SqueezeExciteCl")
}


def rows_for(library: str, class_name: str) -> list[MLPLayout]:
    """The rows of ``library`` (``"timm"``/``"transformers"``) that name ``class_name``."""
    return [row for row in LAYOUTS if row.library == library and class_name in row.classes]


def all_class_names() -> list[str]:
    """Every class name with a row, for "closest rows" hints."""
    return sorted({name for row in LAYOUTS for name in row.classes})


# --- attention ----------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionLayout:
    """One row of the attention table: how an attention module class is laid out.

    A head is ``head_dim`` consecutive channels of the output projection's input (what
    calibration records), produced by the same rows of every input projection.

    Attributes:
        library: ``"timm"`` or ``"transformers"``.
        classes: Class names this row applies to.
        inputs: Paths of the layers producing the heads' channels: one fused ``qkv``
            (three blocks of ``heads * head_dim`` rows), separate ``q``/``k``/``v``, a
            packed ``kv`` (two blocks), a gate (one block).
        proj: Path of the output projection (its input columns are the heads' channels).
        heads: Attribute paths holding the head count, updated by the surgery.
        channels: Attribute paths holding ``heads * head_dim``, updated too.
        head_dim: Attribute path holding the head size (kept unchanged), or ``None``:
            then ``proj``'s input width over the head count.
        head_params: ``(path, dim)`` of parameters indexed by head along ``dim``
            (relative-position tables, per-head logit scales, the last layer of a
            position-bias MLP).
        channel_params: Paths of 1-D parameters or buffers over the channels (``q_bias``,
            ``v_bias``, ``k_bias``; one or more blocks of ``heads * head_dim``).
        channel_modules: Per-channel modules over the heads' output (a LayerNorm before
            ``proj``: it couples the heads, so the fold there is approximate).
        module: The Python module of the classes (``timm.layers.attention``) when other
            designs share the class name (``Attention``); empty: any.
        note: What the row covers.
        refused: Why modules of this row cannot lose heads (the row only explains).
        when: A refused row applies only where this path is present (not ``None``).
    """

    library: str
    classes: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    proj: str = ""
    heads: tuple[str, ...] = ("num_heads",)
    channels: tuple[str, ...] = ()
    head_dim: str | None = "head_dim"
    head_params: tuple[tuple[str, int], ...] = ()
    channel_params: tuple[str, ...] = ()
    channel_modules: tuple[str, ...] = ()
    module: str = ""
    note: str = ""
    refused: str = ""
    when: str = ""

    @property
    def key(self) -> str:
        """A short name of the row: ``timm/Attention``."""
        return f"{self.library}/{self.classes[0]}"


_RESHAPES_TO_INPUT = (
    "its forward reshapes the heads' output to the input width, so it cannot run with fewer heads"
)
_HF_QKVO = ("q_proj", "k_proj", "v_proj")
_HF_HEADS = ("num_attention_heads", "num_heads")
_HF_SELF = ("self.query", "self.key", "self.value")
_HF_SELF_ATTRS = dict(
    heads=("self.num_attention_heads",),
    channels=("self.all_head_size",),
    head_dim="self.attention_head_size",
)
_SHARED_BIAS = (
    "one relative-position table is shared by every layer "
    "(use_shared_relative_position_bias): a layer cannot lose heads on its own"
)

ATTENTION_LAYOUTS: tuple[AttentionLayout, ...] = (
    # --- timm ---------------------------------------------------------------------
    AttentionLayout(_T, ("Attention",), ("qkv", "gate"), "proj", channels=("attn_dim",),
                    channel_modules=("norm",), module="timm.layers.attention",
                    note="timm's shared attention (ViT, DeiT, DeiT-III, DINOv2, AIMv2, "
                         "ViTamin, ...): fused qkv, optional gate and scale norm"),
    AttentionLayout(_T, ("AttentionRope",), ("qkv", "q_proj", "k_proj", "v_proj", "gate"),
                    "proj", heads=("num_heads", "num_kv_heads"), channels=("attn_dim", "kv_dim"),
                    channel_modules=("norm",), module="timm.layers.attention",
                    note="timm's rotary attention (Perception Encoder, rope ViTs, Qwen3-ViT, "
                         "DeepSeek-ViT, Sapiens2), one K/V head per query head"),
    AttentionLayout(_T, ("WindowAttention",), ("qkv",), "proj", head_dim=None,
                    head_params=(("relative_position_bias_table", 1),),
                    module="timm.models.swin_transformer",
                    note="Swin window attention (relative-position table sliced per head)"),
    AttentionLayout(_T, ("WindowAttention",), module="timm.models.swin_transformer_v2",
                    note="Swin V2 window attention", refused=_RESHAPES_TO_INPUT),
    AttentionLayout(_T, ("Attention",), module="timm.models.beit", note="BEiT attention",
                    refused=_RESHAPES_TO_INPUT),
    AttentionLayout(_T, ("EvaAttention",), module="timm.models.eva",
                    note="EVA / EVA02 attention", refused=_RESHAPES_TO_INPUT),
    AttentionLayout(_T, ("Attention",), module="timm.models.pvt_v2", note="PVTv2 attention",
                    refused=_RESHAPES_TO_INPUT),
    AttentionLayout(_T, ("Attention",), module="timm.models.fastvit",
                    note="FastViT attention", refused=_RESHAPES_TO_INPUT),
    AttentionLayout(_T, ("TalkingHeadAttn",), module="timm.models.cait",
                    note="CaiT talking-heads attention",
                    refused="talking heads mix the heads' attention maps before and after "
                            "the softmax, so a head is not separable"),
    # --- transformers ---------------------------------------------------------------
    AttentionLayout(_HF, ("ViTAttention", "DeiTAttention", "Dinov2Attention",
                          "Dinov2WithRegistersAttention", "ViTMSNAttention", "IJepaAttention",
                          "ViTMAEAttention"),
                    _HF_QKVO, "o_proj", heads=_HF_HEADS,
                    note="transformers' q/k/v/o attention (ViT, DeiT, DINOv2, I-JEPA, ...)"),
    AttentionLayout(_HF, ("CLIPAttention", "SiglipAttention", "Siglip2Attention",
                          "MetaClip2Attention"),
                    _HF_QKVO, "out_proj", heads=_HF_HEADS,
                    note="the CLIP and SigLIP vision towers' attention"),
    AttentionLayout(_HF, ("SwinAttention",), _HF_QKVO, "o_proj", heads=_HF_HEADS,
                    head_params=(("relative_position_bias.relative_position_bias_table", 1),),
                    note="transformers' Swin attention (relative-position table sliced per "
                         "head)"),
    AttentionLayout(_HF, ("DonutSwinAttention",), _HF_SELF, "output.dense", **_HF_SELF_ATTRS,
                    head_params=(("self.relative_position_bias_table", 1),),
                    note="Donut's Swin attention (relative-position table sliced per head)"),
    AttentionLayout(_HF, ("Swinv2Attention",), _HF_SELF, "output.dense", **_HF_SELF_ATTRS,
                    head_params=(("self.logit_scale", 0),
                                 ("self.continuous_position_bias_mlp.2.weight", 0)),
                    note="transformers' Swin V2 attention (per-head logit scale and rows of "
                         "the position-bias MLP's last layer)"),
    AttentionLayout(_HF, ("BeitLayer",), tuple(f"attention.{p}" for p in _HF_QKVO),
                    "attention.o_proj", heads=("attention.num_attention_heads",),
                    head_dim="attention.head_dim",
                    head_params=(("relative_position_bias.relative_position_bias_table", 1),),
                    note="transformers' BEiT layer: its attention and its own "
                         "relative-position table, sliced per head"),
    AttentionLayout(_HF, ("Data2VecVisionAttention",),
                    ("attention.query", "attention.key", "attention.value"), "output.dense",
                    heads=("attention.num_attention_heads",),
                    channels=("attention.all_head_size",),
                    head_dim="attention.attention_head_size",
                    head_params=(("attention.relative_position_bias."
                                  "relative_position_bias_table", 1),),
                    note="transformers' Data2Vec-Vision attention (its own relative-position "
                         "table sliced per head)"),
    AttentionLayout(_HF, ("BeitEncoder", "Data2VecVisionEncoder"), module="",
                    when="relative_position_bias", refused=_SHARED_BIAS,
                    note="an encoder sharing one relative-position bias between layers"),
    AttentionLayout(_HF, ("BeitModel",), module="", when="shared_position_bias",
                    refused=_SHARED_BIAS,
                    note="a BEiT model sharing one relative-position bias between layers"),
    AttentionLayout("torch", ("MultiheadAttention",),
                    note="torch's fused nn.MultiheadAttention",
                    refused="torch's fused nn.MultiheadAttention keeps every head in one "
                            "in_proj weight and a fixed num_heads"),
)  # fmt: skip


def attention_rows_for(library: str, class_name: str, module: str) -> list[AttentionLayout]:
    """The attention rows of ``library`` naming ``class_name`` of Python ``module``."""
    return [
        row
        for row in ATTENTION_LAYOUTS
        if row.library == library
        and class_name in row.classes
        and (not row.module or row.module == module)
    ]


# Attention modules deliberately left alone: pooling heads (their output is the pre-logits).
IGNORED_ATTENTION: dict[str, str] = {
    "AttentionPoolLatent": "attention-pooling head (timm ViT global_pool='map')",
    "AttentionPool2d": "attention-pooling head",
    "RotAttentionPool2d": "attention-pooling head",
    "SiglipMultiheadAttentionPoolingHead": "SigLIP's attention-pooling head",
    "Siglip2MultiheadAttentionPoolingHead": "SigLIP 2's attention-pooling head",
}


def all_attention_class_names() -> list[str]:
    """Every attention class name with a row that can lose heads."""
    return sorted({name for row in ATTENTION_LAYOUTS if not row.refused for name in row.classes})
