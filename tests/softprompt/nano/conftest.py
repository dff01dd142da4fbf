"""Shared fixture of the t5-nano tests: a synthetic token corpus in the format softprompt.nano.corpus writes."""

import json
from pathlib import Path

import numpy as np
import pytest

from softprompt.model.loading import load_tokenizer
from softprompt.nano import corpus as nano_corpus


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """A synthetic corpus directory in the format ``softprompt.nano.corpus`` writes."""
    out = tmp_path_factory.mktemp("nano-corpus")
    rng = np.random.default_rng(0)
    words = "the a cat dog sat on mat ran fast slow red blue house tree river bank and of to in".split()
    paragraphs = [" ".join(rng.choice(words, size=12)) for _ in range(400)]
    tokenizer = load_tokenizer()
    counts = nano_corpus.write_token_files(
        out, {"train": [paragraphs[:350]], "validation": [paragraphs[350:]]}, tokenizer
    )
    header = nano_corpus.token_header({split: sum(c) for split, c in counts.items()}, tokenizer)
    totals = {"train_tokens": sum(counts["train"]), "validation_tokens": sum(counts["validation"])}
    package = {
        "package": "synthetic-words",
        "version": "0",
        "licences": ["CC0"],
        "tokens": {"train": totals["train_tokens"]},
    }
    (out / "manifest.json").write_text(json.dumps({"packages": [package], "tokens": header, "totals": totals}))
    return out
