"""The supervised mixture (softprompt.nano.mixture): examples, readers, the cache."""

import numpy as np
import pytest

from softprompt.errors import SoftpromptError
from softprompt.nano import mixture as nano_mixture
from tests.softprompt.nano.helpers import cached_mixture, mixture_rows


def test_mixture_examples_use_label_words_varied_instructions_and_balanced_classes():
    mix = nano_mixture.Mixture(mixture_rows())
    examples = mix.examples(600, np.random.default_rng(0))
    by_source = {s.name: s for s in nano_mixture.SOURCES}
    wordings, labels = set(), []
    for source_text, target in examples:
        name = next(n for n in by_source if f"{n} text number" in source_text)
        source = by_source[name]
        assert target in source.label_words[:2]  # rows only carry classes 0 and 1
        matches = [
            i
            for i, t in enumerate(source.instructions)
            if source_text.startswith(t.split("{text}")[0]) and source_text.endswith(t.split("{text}")[1])
        ]
        wordings.update(
            (name, i) for i in matches[-1:]
        )  # the most specific wording ("sentiment: " is a suffix of another)
        labels.append(source.label_words.index(target))
        assert len(source_text.split()) <= nano_mixture.MAX_WORDS + 12  # the text is cut, the instruction kept
    assert len(wordings) == sum(len(s.instructions) for s in nano_mixture.SOURCES)  # every wording is used
    assert 0.4 < np.mean(labels) < 0.6  # classes drawn uniformly although the rows are 90 % class 0
    assert examples == mix.examples(600, np.random.default_rng(0))  # a function of the generator alone
    assert nano_mixture.format_example(by_source["review-sentiment"], "Lovely dress", 1, 0) == (
        "review sentiment: Lovely dress",
        "positive",
    )
    validation = [t for by_class in mix.splits["validation"] for texts in by_class for t in texts]
    assert validation and all(nano_mixture.is_validation(t) for t in validation)
    train = {t for by_class in mix.splits["train"] for texts in by_class for t in texts}
    assert not train & set(validation)


def test_mixture_readers_parse_each_wheel_format():
    tweets = (
        b'sentiment,confidence,text\r\nnegative,0.7,I hate \xd1 rain\r\npositive,0.9,"Great, day"\r\nodd,1,skip me\r\n'
    )
    assert nano_mixture._read_tweets(tweets) == [("I hate rain", 0), ("Great, day", 2)]
    sarcasm = b'{"input": [{"role": "system", "content": "x"}, {"role": "user", "content": "man wins  war"}], "ideal": "1"}\r\n'
    assert nano_mixture._read_sarcasm(sarcasm) == [("man wins war", 1)]
    reuters = b"Category\tText\nd\tstring\nclass\t\n\nearn\tprofit up\nship\tport strike\nfoo\tdropped\n"
    assert nano_mixture._read_reuters(reuters) == [("profit up", 0), ("port strike", 6)]
    lexicon = (
        b"boring\t-1.3\t0.5\t[-1, -2]\nmeh\t-0.4\t0.5\t[0, -1]\n:)\t2.0\t0.6\t[2, 2]\nbrilliant\t2.8\t0.4\t[3, 3]\n"
    )
    assert nano_mixture._read_lexicon(lexicon) == [
        ("boring", 0),
        ("brilliant", 1),
    ]  # near-neutral and emoticons dropped
    assert all(not any(bad in s.name for bad in ("sst", "rotten", "boolq", "rte", "cb")) for s in nano_mixture.SOURCES)
    assert {s.family for s in nano_mixture.SOURCES}.isdisjoint({"natural language inference", "question answering"})


def test_mixture_keeps_single_words_only_for_a_lexicon():
    words = [(f"word{i}", i % 2) for i in range(200)]
    headlines = [(f"headline {i}" + " here" * (i % 2), i % 2) for i in range(200)]  # 2 or 3 words
    mix = nano_mixture.Mixture({"word-polarity": words, "headline-sarcasm": headlines})
    kept = {
        s.name: {t for split in mix.splits.values() for texts in split[i] for t in texts}
        for i, s in enumerate(mix.sources)
    }
    assert kept["word-polarity"] == {w for w, _ in words}
    assert kept["headline-sarcasm"] == {t for t, _ in headlines if len(t.split()) == 3}


def test_fetch_mixture_reads_the_cache_and_refuses_unknown_sources(tmp_path):
    mix = nano_mixture.fetch_mixture(["headline-sarcasm"], directory=cached_mixture(tmp_path))
    assert [s.name for s in mix.sources] == ["headline-sarcasm"]
    assert mix.table()[0]["wheel"] == "evals==3.0.1.post1" and "CC BY 4.0" in mix.table()[0]["licence"]
    with pytest.raises(SoftpromptError, match="unknown mixture source"):
        nano_mixture.fetch_mixture(["sst2"], directory=tmp_path)
