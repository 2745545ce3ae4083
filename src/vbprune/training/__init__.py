"""Recovering accuracy after pruning: the distillation loss (``losses``, torch only) and
the transformers ``Trainer`` that uses it (``trainer``). This ``__init__`` imports nothing,
so the loss loads without transformers' Trainer machinery."""
