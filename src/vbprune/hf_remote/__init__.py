"""Pruned transformers models with per-MLP widths, loadable without vbprune.

``modeling_vbprune.py`` and a copy of :mod:`vbprune.core.surgery` (as ``surgery.py``) are
written next to every saved pruned transformers model; ``config.json`` keeps the stock
model type, records ``mlp_widths`` and ``mlp_layout``, and names the modeling file's twin
of the model class in ``auto_map``, so stock
``AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`` loads
it. The saved files import only torch and transformers.
"""
