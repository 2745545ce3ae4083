"""Pruned transformers models with per-layer MLP widths, loadable without vbprune.

``modeling_vbprune.py`` (with ``layouts.py``) is copied next to every saved pruned
transformers model; ``config.json`` names its classes in ``auto_map``, so stock
``AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`` loads
it. Both files import only torch and transformers.
"""
