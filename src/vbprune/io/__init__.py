"""Files and the Hub: checkpoints, model cards, pushes, output folders, model specs.

``checkpoint`` saves and loads pruned models (``timm_format`` and ``hf_format`` per
backend, ``metadata`` for the ``vbprune`` config section); ``model_card`` renders the card;
``hub`` pushes; ``folders`` writes output folders atomically; ``model_specs`` loads a model
from ``timm:NAME`` / ``hf:ID`` / a folder. ``vbprune.hf_remote`` holds the files saved
next to transformers checkpoints. This ``__init__`` imports nothing.
"""
