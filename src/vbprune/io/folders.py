"""Folders: outputs written all at once (a temporary sibling moved into place at the
end), a local path told from a Hub id, and the saved model in a folder with its config."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import (
    NOTHING_WRITTEN,
    CheckpointError,
    MissingInputError,
    OutputExistsError,
    OutputNotWritableError,
    out_of_space,
    written_file,
)


def is_local_path(spec: str) -> bool:
    """True when ``spec`` names a local path rather than a Hub id (``name`` or ``owner/name``)."""
    return (
        os.path.exists(spec)
        or spec.startswith(("/", ".", "~"))
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def check_output_directory(
    path: str | Path,
    overwrite: bool = False,
    inputs: Iterable[str | Path | None] = (),
    in_place: bool = False,
) -> Path:
    """Fail early (before hours of work) if ``path`` holds something and may not be
    replaced, or cannot be created, or replacing it would remove the current folder or
    one of ``inputs`` (local paths the command reads; others are ignored).

    Raises:
        OutputExistsError: (a ``FileExistsError``) for a file, a non-empty folder without
            ``overwrite``, a file where a parent folder should be, the current folder or
            one that holds it, or a folder that holds an input or lies inside one.
        OutputNotWritableError: where the output is written cannot be: its parent (a
            folder replaced whole, see :func:`atomic_directory`), or with ``in_place``
            the folder itself when it exists (written into, as ``vbprune distill`` does).
    """
    path = Path(path)
    check_parents(path, probe=path if in_place and path.is_dir() else None)
    target = path.expanduser().resolve()
    if target == Path.cwd() or target in Path.cwd().parents:
        raise OutputExistsError(
            f"--output {path} is the current folder or holds it: give a new folder"
        )
    for given in inputs:
        if given is None or not os.path.exists(os.path.expanduser(str(given))):
            continue  # a Hub id or spec: nothing on disk to protect
        source = Path(given).expanduser().resolve()
        if target == source or target in source.parents or source in target.parents:
            raise OutputExistsError(
                f"--output {path} and the input {given} overlap: writing one would replace "
                "the other; give a folder outside it"
            )
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"output {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {path} is not empty (pass --overwrite to replace)")
    return path


def _remove(paths: list[Path]) -> list[Path]:
    """Delete these files and folders (whatever is already gone); return them."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return paths


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the hidden ``.NAME.*.tmp`` files and folders an interrupted
    :func:`atomic_directory` (or an atomic file write) left in ``folder``; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return _remove([p for p in folder.iterdir()
                    if p.name.startswith(".") and p.name.endswith(".tmp")])  # fmt: skip


def _umask() -> int:
    try:  # Linux reports it: no need to change it, even for an instant
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)  # elsewhere reading it means setting it: put it straight back
    os.umask(mask)
    return mask


def check_parents(path: str | Path, probe: Path | None = None) -> None:
    """Refuse, before any work, an output whose folder cannot be written.

    Raises:
        OutputExistsError: if a parent of ``path`` is a file.
        OutputNotWritableError: if the nearest existing parent (or ``probe``) cannot be
            written to (read-only, no permission, or full): tested by writing 4 KB there.
    """
    blocking = next((p for p in Path(path).parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise OutputExistsError(f"cannot write {path}: {blocking} is a file")
    where = probe or (blocking if blocking is not None else Path.cwd())
    try:  # os.access says yes to root on a read-only mount: really try
        with tempfile.NamedTemporaryFile(dir=where, prefix=".vbprune-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
    except OSError as error:
        raise OutputNotWritableError(
            f"cannot write {path}: {where} is not writable ({error.strerror or error})"
        ) from None


def read_model_config(folder: Path, name: str | Path | None = None) -> dict[str, Any]:
    """The ``config.json`` of a saved model folder, as a dict.

    Args:
        folder: The model folder.
        name: How to name the model in errors (default: the folder).

    Raises:
        MissingInputError: if the folder has no ``config.json``.
        CheckpointError: if it is not a JSON object.
    """
    path = folder / "config.json"
    if not path.is_file():
        raise MissingInputError(f"{name or folder} has no config.json: not a saved model")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def is_timm_config(config: dict[str, Any]) -> bool:
    """True for timm's own ``config.json`` (an ``architecture``, no ``model_type``).

    transformers' ``TimmWrapper`` configs also name an ``architecture``, and are
    transformers checkpoints: their ``model_type`` tells them apart.
    """
    return "architecture" in config and "model_type" not in config


def model_folder(directory: str | Path) -> Path | None:
    """The saved model in ``directory``: the folder itself, or its ``model/`` subfolder
    (a ``vbprune prune`` or ``distill`` output); ``None`` if neither has a config.json."""
    directory = Path(directory)
    for candidate in (directory, directory / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path``, on error it is removed.

    Nobody ever sees a half-written ``path``: either the old content or the new one.
    Temporaries an earlier run writing ``path`` left behind (killed before the move) are
    removed first; a full disk or a file-size limit while writing is an
    :class:`~vbprune.OutputNotWritableError` naming ``path``.
    """
    path = check_output_directory(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_own_temporaries(path)
    # the process id in the name tells a live run's temporary from a dead one's
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                suffix=".tmp"))  # fmt: skip
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700): the usual mode instead
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
    except BaseException as error:
        if moved_aside and not path.exists():  # the swap failed half-way: put it back
            old.rename(path)
        shutil.rmtree(tmp, ignore_errors=True)
        full = full_disk_error(error, path, tmp)
        if full is not None:
            raise full from error
        raise


def full_disk_error(
    error: BaseException,
    path: Path,
    tmp: Path | None = None,
    after: str = NOTHING_WRITTEN,
) -> OutputNotWritableError | None:
    """The error to raise when ``error`` says a disk filled (or a size limit was hit):
    naming ``path`` when the write was of this output (under ``path`` or its temporary
    ``tmp``), saying ``after``; else naming the file it was writing (a cache, say);
    ``None`` for any other error."""
    reason = out_of_space(error)
    if reason is None:
        return None
    written = written_file(error)
    inside = written is None or any(
        Path(written).resolve().is_relative_to(Path(folder).resolve())
        for folder in (tmp, path) if folder is not None
    )  # fmt: skip
    if not inside:  # another file's disk: said as that file's
        if isinstance(error, OutputNotWritableError):
            return error
        return OutputNotWritableError.full_disk(written, reason, after=None)
    return OutputNotWritableError.full_disk(path, reason, after)


def remove_own_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries of ``path`` that :func:`atomic_directory` or an atomic file
    write of a run that died left beside it (``.NAME.[PID.]XXXXXXXX.tmp``, whose process
    is gone), and a ``.NAME.old`` left by a swap cut short; return what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    own = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]{{8}}\.tmp")
    stale = []
    for candidate in path.parent.iterdir():
        match = own.fullmatch(candidate.name)
        if match and not (match.group(1) and _alive(int(match.group(1)))):
            stale.append(candidate)
    old = path.with_name(f".{path.name}.old")
    if old.exists() and path.exists():  # the new content is in place: the old one is stale
        stale.append(old)
    return _remove(stale)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (ours counts: a live run; on
    Windows, where no signal can ask, every one does)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True
