"""The layer surgery the modeling file resizes with.

Inside vbprune this is :mod:`vbprune.core.surgery`; next to a saved checkpoint it is a
copy of that file (torch only), so stock transformers needs nothing else.
"""

from ..core.surgery import ensure_bias, shrink_attention, shrink_mlp

__all__ = ["ensure_bias", "shrink_attention", "shrink_mlp"]
