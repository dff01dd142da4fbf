"""How pooled prompts are evaluated: one ``EvalConfig``, and one rule (``resolve_settings``) that merges what the runs
recorded with what the caller gives, shared by ensemble-eval, predict, serve and the Python API.

Light on purpose (no torch): the command line builds its evaluation options from ``EvalConfig``'s fields at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS, check_decoding, complete_decoding

UNRECORDED_MAX_LENGTH = 512  # the input length of runs that record none (PEFT imports)
DECODING_HELP = {  # what each decoding setting does (train's validation, and here)
    "max_new_tokens": "generation: longest output",
    "num_beams": "generation: 1 = greedy, >1 = beam search",
    "no_repeat_ngram_size": "generation: forbid repeated n-grams (0 = off)",
}


def _recorded(key: str) -> dict[str, str]:
    """A decoding field's metadata: its help, defaulting to the runs' own."""
    default = DECODING_DEFAULTS[key]
    return {
        "help": f"{DECODING_HELP[key]} [default: what the runs were trained and validated with; {default} for runs "
        "that record none]"
    }


@dataclass(frozen=True)
class EvalConfig:
    """How pooled prompts score (classification) or generate (generation). A setting left None is the runs' own
    (``resolve_settings``); each given one is checked here, with its option's name in the message.

    >>> EvalConfig(num_beams=4).decoding  # not resolved yet: None is what the runs recorded
    {'max_new_tokens': None, 'num_beams': 4, 'no_repeat_ngram_size': None}
    >>> EvalConfig(max_tokens=0)
    Traceback (most recent call last):
    softprompt.errors.SoftpromptError: --max-tokens must be a positive integer, got 0
    """

    max_length: int | None = field(
        default=None,
        metadata={
            "help": "longest input in tokens (longer ones are truncated) [default: the runs' --max-source-length, the "
            f"length training validated them at; {UNRECORDED_MAX_LENGTH} for runs that record none]"
        },
    )
    max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "tokens per model call: inputs are sorted by length and a pass holds rows × padded length × "
            "candidates (or beams) within it [default: 8192 on CPU, 65536 on CUDA]"
        },
    )
    max_new_tokens: int | None = field(default=None, metadata=_recorded("max_new_tokens"))
    num_beams: int | None = field(default=None, metadata=_recorded("num_beams"))
    no_repeat_ngram_size: int | None = field(default=None, metadata=_recorded("no_repeat_ngram_size"))
    length_normalise: bool = field(
        default=False, metadata={"help": "rank by mean instead of summed token log-likelihood"}
    )

    def __post_init__(self) -> None:
        check_decoding({key: value for key, value in self.decoding.items() if value is not None})
        for name in ("max_tokens", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SoftpromptError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")

    @property
    def decoding(self) -> dict[str, Any]:
        """The decoding settings, as ``generate()`` keyword arguments."""
        return {key: getattr(self, key) for key in DECODING_DEFAULTS}


def resolve_settings(
    metas: Sequence[dict[str, Any]], kind: str | None = None, given: EvalConfig | None = None
) -> EvalConfig:
    """The settings to evaluate the runs (their ``softprompt.json``) with: each as ``given``, else as the runs recorded.

    The input length is the runs' --max-source-length (the longest if they differ; ``UNRECORDED_MAX_LENGTH`` for runs
    that record none). A generation task (``kind``) decodes as the runs were validated, else with
    ``DECODING_DEFAULTS``; runs that differ in a decoding setting not given must be told which. Other kinds, and
    ``kind`` None (a server whose requests carry their own decoding), take the decoding given or the defaults.

    >>> from ensembles.pool import read_pool_metas
    >>> settings = resolve_settings(read_pool_metas(["runs/sst2"]), "classification", EvalConfig(max_tokens=4096))
    >>> settings.max_length, settings.max_tokens  # the runs' --max-source-length; the caller's token budget
    (256, 4096)
    >>> runs = [{"train_args": {"max_source_length": 128, "decoding": {"max_new_tokens": 32, "num_beams": 4}}}]
    >>> resolve_settings(runs, "generation", EvalConfig(max_new_tokens=48)).decoding  # the rest as they validated
    {'max_new_tokens': 48, 'num_beams': 4, 'no_repeat_ngram_size': 0}
    """
    given = given or EvalConfig()
    told = [key for key, value in given.decoding.items() if value is not None]
    recorded = _recorded_decoding(metas, told) if kind == "generation" else {}
    decoding = {
        key: value if value is not None else recorded.get(key, DECODING_DEFAULTS[key])
        for key, value in given.decoding.items()
    }
    max_length = _recorded_max_length(metas) if given.max_length is None else given.max_length
    return replace(given, max_length=max_length, **decoding)


def _recorded_max_length(metas: Sequence[dict[str, Any]]) -> int:
    """The input length at which the runs were validated: their --max-source-length (the longest if they differ)."""
    return max((meta.get("train_args") or {}).get("max_source_length") or UNRECORDED_MAX_LENGTH for meta in metas)


def _recorded_decoding(metas: Sequence[dict[str, Any]], given: Sequence[str]) -> dict[str, Any]:
    """The decoding the runs were validated with (their --max-new-tokens, --num-beams, --no-repeat-ngram-size; {} for
    runs that record none), but for the ``given`` settings. Runs that differ in a setting not given must be told."""
    recorded = [{key: value for key, value in _run_decoding(meta).items() if key not in given} for meta in metas]
    for key in sorted({key for decoding in recorded for key in decoding}):
        values = {decoding.get(key) for decoding in recorded}
        if len(values) > 1:
            flag = "--" + key.replace("_", "-")
            raise SoftpromptError(
                f"the runs were trained with different {flag} ({', '.join(map(str, sorted(values, key=str)))}); "
                f"give {flag} to generate with one value"
            )
    return {key: value for decoding in recorded for key, value in decoding.items()}


def _run_decoding(meta: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded decoding, every setting filled in ({} for a run that records none)."""
    decoding = (meta.get("train_args") or {}).get("decoding")
    return complete_decoding(decoding) if decoding else {}
