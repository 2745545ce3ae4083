"""Planning and applying a pruning: the steps shared by :func:`vbprune.prune_model` and
:func:`vbprune.apply_plan` (:mod:`.steps`) and the plans of budgets and heads
(:mod:`.budget`). Between the architecture adapters and the public entry points."""
