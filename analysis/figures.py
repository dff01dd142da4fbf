"""Writing matplotlib figures: PNG and SVG side by side, atomically, with one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write, ensure_parent

FORMATS = (".png", ".svg")


def check_plot_path(path: str | Path) -> Path:
    """``path`` as a Path, refused unless it ends with .png or .svg."""
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise SoftpromptError(f"plot path must end with .png or .svg, got {str(path)!r}")
    return out


def fitted_title(fig: Figure, title: str) -> str:
    """``title`` wrapped onto lines that fit ``fig``'s width at matplotlib's default title size (~11 characters an inch)."""
    return textwrap.fill(title, width=int(11 * fig.get_figwidth()))


def save_png_and_svg(fig: Figure, path: str | Path, flag: str) -> None:
    """Write ``fig`` at ``path`` (.png or .svg) and in the other format beside it; ``flag`` names the
    option that chose the path, for error messages."""
    out = check_plot_path(path)
    for target in (out, out.with_suffix(".svg" if out.suffix.lower() == ".png" else ".png")):
        ensure_parent(target, "the plot", flag)
        fmt = target.suffix.lower().lstrip(".")
        atomic_write(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150))
