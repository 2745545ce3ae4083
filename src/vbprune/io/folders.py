"""Folders: outputs written all at once (a temporary sibling moved into place at the
end), and telling a local path from a Hub id."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import OutputExistsError


def is_local_path(spec: str) -> bool:
    """True when ``spec`` names a local path rather than a Hub id (``name`` or ``owner/name``)."""
    return (
        os.path.exists(spec)
        or spec.startswith(("/", ".", "~"))
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def check_output_directory(path: str | Path, overwrite: bool = False) -> Path:
    """Fail early (before hours of work) if ``path`` holds something and may not be replaced.

    Raises:
        OutputExistsError: (a ``FileExistsError``) for a file, or a non-empty folder
            without ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"output {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {path} is not empty (pass --overwrite to replace)")
    return path


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path``, on error it is removed.

    Nobody ever sees a half-written ``path``: either the old content or the new one.
    """
    path = check_output_directory(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = path.with_name(f".{path.name}.old")
    moved_aside = False
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            moved_aside = True
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if moved_aside and not path.exists():  # the swap failed half-way: put it back
            old.rename(path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
