"""The method's maths and the types it is described in.

``statistics`` (running moments, Chan merge) -> ``selection`` (which neurons go: a plain,
serialisable plan) -> ``surgery`` (shrink layers, fold means into the next bias), driven
by one ``config.PruningConfig`` and failing with the ``errors`` types.

These modules import only torch, safetensors, the standard library and each other: no
timm, transformers or accelerate, and nothing from the rest of vbprune. They work on
plain layers and tensors; :mod:`vbprune.architectures` says which layers form an MLP.
This ``__init__`` imports nothing, so ``vbprune.core.config`` loads without torch.
"""
