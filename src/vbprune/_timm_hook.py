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
    # a failure here must not break ``import timm``; vbprune.from_pretrained still works
    try:
        from .io.timm_entry import register

        register()
    except Exception as error:
        import warnings

        warnings.warn(f"vbprune could not register its timm entry: {error}", stacklevel=2)


class _AfterTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps timm's own loader so that the entry is registered
    once timm's module has run.

    It stays on ``sys.meta_path`` until timm is really imported: a mere
    ``importlib.util.find_spec("timm")`` (transformers' ``is_timm_available`` makes one)
    asks the finders too, but never runs the loader."""

    # marks the hook across copies of this module (a reload, or vbprune imported again
    # after sys.modules was cleared): one hook only, and never one asking another
    vbprune_timm_hook = True

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        spec = None
        for finder in list(sys.meta_path):  # the other finders, in import's order
            if getattr(finder, "vbprune_timm_hook", False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        finder, load = self, spec.loader.exec_module

        def exec_module(module):
            load(module)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            _register()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if timm is loaded, else when it is."""
    if "timm" in sys.modules:
        _register()
    elif not any(getattr(f, "vbprune_timm_hook", False) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimm())
