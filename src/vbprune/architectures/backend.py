"""Which library a model comes from: the one question every framework branch asks."""

from __future__ import annotations

from typing import Literal

from torch import nn

Backend = Literal["timm", "transformers"]


def model_backend(model: nn.Module) -> Backend | None:
    """``"timm"`` or ``"transformers"``: the library of ``model``'s class or a base class.

    Pruned transformers models (vbprune's classes, or the same classes loaded with
    ``trust_remote_code``) derive from the stock ones, so they count as transformers.
    ``None`` for anything else (a plain ``nn.Module``, a wrapper).
    """
    for cls in type(model).__mro__:
        if cls.__module__.startswith("timm."):
            return "timm"
        if cls.__module__.startswith("transformers.") and hasattr(model, "config"):
            return "transformers"
    return None
