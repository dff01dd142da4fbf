"""Row expanders: how a dataset's stored rows become the flat rows a task's template reads.

Each built-in task's ``expand`` is one of these (``keep_row`` by default): SuperGLUE MultiRC
paragraphs become one row per answer option, WSC's nested spans are lifted, E2E meaning
representations and WebNLG triples are linearised as Li & Liang (2021) do. Local files and hub
rows are accepted alike. A problem with one row raises ``BadRow``; ``Task.to_examples`` adds where.

    >>> linearize_mr("name[The Eagle], area[riverside]")
    'name : The Eagle | area : riverside'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from softprompt.errors import SoftpromptError

Row = Mapping[str, Any]


class BadRow(SoftpromptError):
    """A problem with one row; ``Task.to_examples`` adds where it happened."""


class InputRow(dict):
    """An unlabelled input row whose target column holds a placeholder (``Task.to_inputs``);
    error messages list only the columns the user gave."""

    def __init__(self, row: Row, target_column: str, placeholder: Any):
        super().__init__({**row, target_column: placeholder})
        self.given = tuple(row)


def row_value(row: Row, column: str, hint: str) -> Any:
    """The value of ``column``; a missing column or an empty (None) cell is an error."""
    given = getattr(row, "given", tuple(row))
    if column not in row:
        available = ", ".join(map(str, given)) or "none"
        raise BadRow(f"column {column!r} not found; available columns: {available} — {hint}")
    if row[column] is None:
        filled = ", ".join(str(name) for name in given if row[name] is not None) or "none"
        raise BadRow(
            f"column {column!r} is empty (columns with values in this row: {filled}) — fill it in or drop the row"
        )
    return row[column]


def row_text(row: Row, column: str, hint: str) -> str:
    """The value of ``column`` as text (a number counts; a JSON object or list is refused, not printed as Python)."""
    value = row_value(row, column, hint)
    if isinstance(value, (Mapping, list, tuple)):
        raise BadRow(
            f"column {column!r} holds a JSON {'object' if isinstance(value, Mapping) else 'list'}, not text; give it as a string"
        )
    return str(value)


def keep_row(row: Row) -> list[Row]:
    """The default ``expand``: a stored row is already flat."""
    return [row]


def flatten_multirc(row: Row) -> list[Row]:
    """A paragraph-level SuperGLUE MultiRC row -> one hub-style row per answer option, with the hub's
    ``idx`` (paragraph, question and answer ids; None where the file gives none)."""
    passage = row.get("passage")
    if not isinstance(passage, Mapping):
        return [row]  # already flat (hub schema: paragraph, question, answer, label)
    hint = "expected SuperGLUE MultiRC jsonl"
    return [
        {
            "paragraph": row_text(passage, "text", hint),
            "question": row_text(question, "question", hint),
            "answer": row_text(answer, "text", hint),
            "label": row_value(answer, "label", hint),
            "idx": {"paragraph": row.get("idx"), "question": question.get("idx"), "answer": answer.get("idx")},
        }
        for question in row_value(passage, "questions", hint)
        for answer in row_value(question, "answers", hint)
    ]


def lift_wsc_target(row: Row) -> list[Row]:
    """SuperGLUE WSC jsonl nests the spans under ``target``; the hub keeps them top level."""
    target = row.get("target")
    return [{**row, **target}] if isinstance(target, Mapping) else [row]


_MR_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def linearize_mr(mr: str) -> str:
    """Linearise an E2E MR as Li & Liang (2021) do.

    ``name[Alimentum], area[city centre]`` -> ``name : Alimentum | area : city centre``.
    """
    slots = _MR_SLOT.findall(mr)
    if not slots or _MR_SLOT.sub("", mr).strip():
        raise BadRow(f"malformed E2E meaning representation {mr!r}; expected 'name[value], ...'")
    return " | ".join(f"{key} : {value}" for key, value in slots)


def expand_e2e(row: Row) -> list[Row]:
    """Linearise the MR; accepts the official csv (mr, ref) and hub columns (meaning_representation,
    human_reference). Unlabelled inputs (``Task.to_inputs``) carry a placeholder ``ref``."""
    hint = "the e2e_nlg task needs columns mr, ref (or the hub's meaning_representation, human_reference)"
    mr = row_text(row, "meaning_representation" if "meaning_representation" in row else "mr", hint)
    return [
        {"mr": linearize_mr(mr), "ref": row_value(row, "human_reference" if "human_reference" in row else "ref", hint)}
    ]


def linearize_triples(triples: Sequence[Sequence[str] | str]) -> str:
    """WebNLG triples -> ``subject : property : object | ...`` (underscores become spaces).

    A triple is ``[subject, property, object]`` or, as GEM stores it, ``"subject | property |
    object"``.
    """
    parts = [t.split(" | ") if isinstance(t, str) else t for t in triples or ()]
    if not parts or any(len(triple) != 3 for triple in parts):
        raise BadRow(
            f"malformed triples {triples!r}; expected [[subject, property, object], ...] "
            "or ['subject | property | object', ...]"
        )
    return " | ".join(" : ".join(str(part).replace("_", " ").strip() for part in t) for t in parts)


def expand_webnlg(row: Row) -> list[Row]:
    """One row per reference text; accepts our jsonl (triples, text) and GEM/hub rows.

    ``text`` may be a string or a list of strings. GEM rows (``input``, ``target``, ``references``)
    keep every reference of an input in ``references`` (validation, test) or one ``target`` per row
    with empty ``references`` (train).
    """
    hint = (
        'the webnlg task needs jsonl rows {"triples": [[s, p, o], ...], "text": ...} '
        'or GEM rows {"input": ["s | p | o", ...], "target": ..., "references": [...]}'
    )
    if "input" in row and "triples" not in row:  # GEM/web_nlg, as on the hub
        triples = linearize_triples(row_value(row, "input", hint))
        texts = row.get("references") or [row_value(row, "target", hint)]
    else:
        triples = linearize_triples(row_value(row, "triples", hint))
        texts = row_value(row, "text", hint)
    texts = [texts] if isinstance(texts, str) else texts
    return [{"triples": triples, "text": text} for text in texts]
