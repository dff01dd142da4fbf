"""Crash-safe writes: a file or a whole directory is built beside its target, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from softprompt.errors import SoftpromptError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to produce the file, fsync it, then rename it onto ``path``.

    A reader never sees a half-written file, and an existing ``path`` survives a failed write.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; artefacts get the usual permissions
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):  # disk full, read-only or vanished folder: one line; the old file is kept
            raise SoftpromptError(
                f"cannot write {path} ({error.strerror or error}); free disk space or choose a writable location"
            ) from None
        raise
    _fsync_dir(path.parent)


def ensure_parent(path: Path, what: str, flag: str) -> None:
    """Create ``path``'s folder for ``what`` (e.g. "the report"); a file in the way or an unwritable
    location is a one-line error that names ``flag``, the option that chose the path."""
    if path.parent.exists() and not path.parent.is_dir():
        raise SoftpromptError(
            f"cannot write {what} to {path}: {path.parent} is a file, not a folder; choose another {flag} path"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SoftpromptError(
            f"cannot write {what} to {path} ({error.strerror or error}); choose a writable {flag} path"
        ) from None


def check_output_file(path: Path, what: str, flag: str, example: str, ours: Callable[[Path], bool]) -> None:
    """Before any work, that ``path`` can take ``what`` (e.g. "the report"): a file path (``example``: a name to suggest under a folder),
    whose folder can be made, and no file there but one that ``ours`` recognises as written by softprompt, so that
    a rerun replaces its own result but never another file."""
    if path.is_dir():
        raise SoftpromptError(f"{flag} {path} is a folder; give a file path, e.g. {path / example}")
    if path.is_file() and not ours(path):
        raise SoftpromptError(
            f"{flag} {path} holds a file that softprompt did not write; choose another path or remove that file"
        )
    ensure_parent(path, what, flag)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_out_dir(out: Path, overwrite: bool, is_ours: Callable[[Path], bool], what: str, option: str) -> bool:
    """Whether ``out`` holds ``what`` to be replaced; errors when it may not be written."""
    if out.exists() and not out.is_dir():
        raise SoftpromptError(f"{option} {out} is a file; choose a directory path")
    if not (out.is_dir() and any(out.iterdir())):
        return False
    if not is_ours(out):
        raise SoftpromptError(
            f"{option} {out} holds files that are not {what}; refusing to touch them, choose another directory"
        )
    if not overwrite:
        raise SoftpromptError(
            f"{option} {out} already holds {what}; pass --overwrite to replace it or choose another directory"
        )
    return True


def write_fresh_dir(
    out_dir: str | os.PathLike,
    write: Callable[[Path], None],
    overwrite: bool,
    is_ours: Callable[[Path], bool],
    what: str,
    option: str,
) -> None:
    """Build the directory in a temporary sibling and rename it into place, so ``out_dir`` is
    either absent/unchanged or complete. An existing directory must be empty, or hold ``what``
    and ``overwrite`` be set; anything else is never deleted."""
    out = Path(out_dir)
    replace = check_out_dir(out, overwrite, is_ours, what, option)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # default permissions (umask), unlike tempfile.mkdtemp's 0700
    except OSError as error:
        raise SoftpromptError(
            f"cannot write to {option} {out} ({error.strerror}); choose a writable directory"
        ) from None
    old = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
    try:
        write(tmp)
        if replace:
            os.replace(out, old)
        elif out.is_dir():
            out.rmdir()  # empty: make room for the rename
        os.replace(tmp, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
