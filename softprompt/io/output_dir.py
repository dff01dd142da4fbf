"""A training run's output folder: never clobber what is there, and never lose it to a run that fails.

``prepare_output_dir`` refuses a folder that holds something else (or a run, unless ``--resume`` or
``--overwrite``). ``output_dir_for`` wraps a whole run: an old run that ``--overwrite`` replaces is set aside
and deleted only once the new run has finished or written a checkpoint of its own (a run that fails before
that gets the old one back), a folder the run made is removed again if the run leaves it empty, and an
interrupted run (Ctrl-C, or SIGTERM, which the CLI turns into the same) says which checkpoint it keeps.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from softprompt.errors import SoftpromptError
from softprompt.io.checkpoint import checkpoint_step, has_checkpoint
from softprompt.io.store import META


def prepare_output_dir(path: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a directory that holds something else (or a finished run) unless asked."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SoftpromptError(f"--output-dir {path} is a file; choose a directory path")
    if resume and path.is_dir() and any(path.iterdir()) and not has_checkpoint(path):
        raise SoftpromptError(
            f"--output-dir {path} has no checkpoint to resume; drop --resume and choose an empty or new directory"
        )
    if path.is_dir() and any(path.iterdir()) and not resume:
        if not overwrite:
            what = "a softprompt run" if _is_run(path) else "files that are not a softprompt run"
            raise SoftpromptError(
                f"--output-dir {path} already holds {what}; pass --resume to continue it or --overwrite to replace it"
            )
        if not _is_run(path):
            raise SoftpromptError(
                f"--output-dir {path} holds files that are not a softprompt run; refusing to delete them, choose another directory"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SoftpromptError(
            f"cannot write to --output-dir {path} ({error.strerror}); choose a writable directory"
        ) from None


@contextmanager
def output_dir_for(path: str | Path, resume: bool, overwrite: bool, main: bool = True) -> Iterator[None]:
    """Prepare ``path`` for a run (on the ``main`` process), run the body, and clean up after a failure (see the
    module docstring).

    >>> with output_dir_for("runs/example-dir", resume=False, overwrite=True):
    ...     pass  # train into runs/example-dir
    """
    path = Path(path)
    created, set_aside = not path.exists(), None
    if main:
        if overwrite and not resume and path.is_dir() and _is_run(path):
            set_aside = path.with_name(f".{path.name}.replaced")
            shutil.rmtree(set_aside, ignore_errors=True)  # left by a crash in an earlier replacement
            path.rename(set_aside)
        prepare_output_dir(path, resume, overwrite)
        if resume and not has_checkpoint(path):  # e.g. a job that always passes --resume
            print(f"note: no checkpoint in {path} to resume; starting a new run there", file=sys.stderr)
    try:
        yield
    except BaseException as error:
        kept = ""
        if main and not has_checkpoint(path):
            if set_aside is not None:  # the new run has nothing yet: the old one back
                shutil.rmtree(path, ignore_errors=True)
                set_aside.rename(path)
                set_aside, kept = None, f"; the earlier run in {path} is back in place"
            elif created and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            message = f"interrupted before the first checkpoint{kept}"
        else:
            message = (
                f"interrupted: the checkpoint of step {checkpoint_step(path)} in {path} is kept; run the same command "
                "with --resume to continue from it"
            )
        if main and isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt(message) from error  # the CLI prints it as its one line
        raise
    finally:
        if set_aside is not None and set_aside.exists():
            shutil.rmtree(set_aside)


def _is_run(path: Path) -> bool:
    return (path / META).is_file() or (path / "checkpoint").is_dir()
