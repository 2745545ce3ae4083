"""Measuring models: accuracy over sharded loaders (``accuracy``), offline ``evaluate``
metrics (``metrics``), MACs and parameters (``counting``), latency (``latency``) and the
accuracy-vs-size sweep (``sweep``). This ``__init__`` imports nothing."""
