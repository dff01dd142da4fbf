"""Row expanders: E2E and WebNLG linearisation, MultiRC flattening, row errors."""

from __future__ import annotations

import pytest

from softprompt.data.rows import BadRow, flatten_multirc, linearize_mr, linearize_triples, row_value


def test_linearize_mr_follows_li_and_liang():
    mr = "name[The Eagle], customer rating[5 out of 5], priceRange[£20-25]"
    assert linearize_mr(mr) == "name : The Eagle | customer rating : 5 out of 5 | priceRange : £20-25"
    with pytest.raises(BadRow, match="malformed E2E meaning representation"):
        linearize_mr("name: The Eagle")


def test_linearize_triples_accepts_lists_and_gem_strings():
    as_lists = linearize_triples([["Abilene_Regional_Airport", "cityServed", "Abilene"]])
    assert as_lists == linearize_triples(["Abilene_Regional_Airport | cityServed | Abilene"])
    assert as_lists == "Abilene Regional Airport : cityServed : Abilene"
    with pytest.raises(BadRow, match="malformed triples"):
        linearize_triples(["only | two"])


def test_flatten_multirc_gives_one_row_per_answer_and_keeps_flat_rows():
    passage = {
        "text": "P.",
        "questions": [
            {"question": "Q1?", "answers": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]},
            {"question": "Q2?", "answers": [{"text": "c", "label": 0}]},
        ],
    }
    rows = flatten_multirc({"passage": passage})
    assert [(r["question"], r["answer"], r["label"]) for r in rows] == [
        ("Q1?", "a", 1),
        ("Q1?", "b", 0),
        ("Q2?", "c", 0),
    ]
    flat = {"paragraph": "P.", "question": "Q?", "answer": "a", "label": 1}
    assert flatten_multirc(flat) == [flat]


def test_row_value_names_the_missing_column_and_the_fix():
    with pytest.raises(BadRow, match="column 'label' not found; available columns: text — add it"):
        row_value({"text": "x"}, "label", "add it")
    with pytest.raises(BadRow, match="column 'text' is empty"):
        row_value({"text": None}, "text", "")
