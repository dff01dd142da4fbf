"""Paths given on the command line: each file or folder at most once, however it is spelled; ``RUN#i`` specs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from softprompt.errors import SoftpromptError


def each_once(paths: Sequence[str | Path], what: str) -> list[str]:
    """``paths`` as strings, refused when one is given twice (also as another spelling of its path, or a link to it):
    a run would vote twice, a report count as two seeds."""
    seen: dict[Path, str] = {}
    for path in map(str, paths):
        key = Path(path).resolve()
        if key in seen:
            also = "" if seen[key] == path else f" (also as {seen[key]})"
            raise SoftpromptError(f"{what} {path} is given twice{also}; give each {what} once")
        seen[key] = path
    return list(seen.values())


def parse_spec(spec: str, flag: str = "--init-from") -> tuple[str, int | None]:
    """``"runs/boolq#2"`` -> ("runs/boolq", 2); ``"runs/boolq"`` -> ("runs/boolq", None); ``flag`` names
    the option in errors."""
    run, sep, index = spec.rpartition("#")
    if not sep:
        return spec, None
    if not run or not index.isdigit():
        raise SoftpromptError(
            f"{flag} {spec!r} is not RUN or RUN#i (i a prompt index); write e.g. runs/boolq or runs/boolq#0"
        )
    return run, int(index)
