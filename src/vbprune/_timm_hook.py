"""Register vbprune's timm model entry when timm is imported (standard library only).

``import vbprune`` must stay cheap, so it does not import timm. If timm is already
imported the entry is registered at once; otherwise a finder on ``sys.meta_path`` waits
for ``import timm`` and registers it right after timm has loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register() -> None:
    from .io.timm_entry import register

    register()


class _AfterTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps timm's own loader so that the entry is registered
    once timm's module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)  # once, and never while looking for the real spec
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if timm is loaded, else when it is."""
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterTimm) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimm())
