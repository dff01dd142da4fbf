"""A Griffe extension for the API reference (mkdocs.yml): the docstrings' doctest examples (runs of lines
from a ``>>>`` line to the next blank line) are shown as Python console code blocks instead of Markdown text."""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every doctest block outside an existing code fence wrapped in a ```pycon fence."""
    out: list[str] = []
    in_fence = in_doctest = False
    for line in text.split("\n"):
        if in_doctest and not line.strip():
            out.append("```")
            in_doctest = False
        elif not in_doctest and line.startswith("```"):
            in_fence = not in_fence
        elif not in_doctest and not in_fence and line.startswith(">>>"):
            out.append("```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctest examples of every object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
