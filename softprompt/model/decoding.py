"""Decoding settings of generation tasks (``generate()`` keyword arguments): their defaults and their check.

Light on purpose (no torch): the CLI builds its ``--max-new-tokens``/``--num-beams``/``--no-repeat-ngram-size``
options from ``DECODING_DEFAULTS`` at start-up.

>>> complete_decoding({"num_beams": 4})
{'max_new_tokens': 64, 'num_beams': 4, 'no_repeat_ngram_size': 0}
"""

from __future__ import annotations

from typing import Any

from softprompt.errors import SoftpromptError

# what train's validation, ensemble-eval and predict use for a setting nobody gave; every run records all three
DECODING_DEFAULTS = {"max_new_tokens": 64, "num_beams": 1, "no_repeat_ngram_size": 0}


def complete_decoding(decoding: dict[str, Any]) -> dict[str, Any]:
    """``decoding`` with every setting it leaves out at its default (runs written before --no-repeat-ngram-size
    record none for it, and decoded without it: 0)."""
    return {**DECODING_DEFAULTS, **decoding}


def check_decoding(decoding: dict[str, Any]) -> None:
    """Raise a one-line ``SoftpromptError`` for decoding settings that ``generate()`` cannot run
    (``--max-new-tokens`` and ``--num-beams`` >= 1, ``--no-repeat-ngram-size`` >= 0)."""
    for name in ("max_new_tokens", "num_beams"):
        if name in decoding and decoding[name] < 1:
            raise SoftpromptError(f"--{name.replace('_', '-')} must be a positive integer, got {decoding[name]}")
    if decoding.get("no_repeat_ngram_size", 0) < 0:
        raise SoftpromptError(f"--no-repeat-ngram-size must be >= 0 (0: off), got {decoding['no_repeat_ngram_size']}")
