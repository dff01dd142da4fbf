"""Corpus cleaning, deduplication, splits and token files (softprompt.nano.corpus)."""

import numpy as np
import torch

from softprompt.nano import corpus as nano_corpus
from softprompt.nano.pretrain import PretrainConfig, training_batch
from tests.softprompt.nano.helpers import TINY


def test_html_pod_wordnet_and_dictd_extraction():
    html = (
        "<html><head><title>T</title><script>var x = 1;</script></head><body><h1>Heading</h1>"
        "<p>The quick brown fox jumps &amp; runs.</p><pre>code = here()</pre><ul><li>first item text</li></ul></body></html>"
    )
    assert [p.strip() for p in nano_corpus.html_paragraphs(html) if p.strip()] == [
        "Heading",
        "The quick brown fox jumps & runs.",
        "first item text",
    ]
    pod = "=head1 NAME\n\nThe B<bold> and C<< $x->y >> and L<perlfunc|perlfunc/open> E<gt> here.\n\n    verbatim code\n"
    assert nano_corpus.pod_paragraphs(pod) == ["The bold and $x->y and perlfunc > here."]
    line = "00006150 03 n 01 parent 0 001 @ 00004475 n 0000 | an organism from which younger ones are obtained  "
    assert nano_corpus.wordnet_paragraphs("  licence header\n" + line) == [
        "parent: an organism from which younger ones are obtained"
    ]
    entry = 'Abdicator \\Ab"di*ca`tor\\, n.\n   One who gives up {power}.\n   [1913 Webster]\n\nNext'
    assert nano_corpus.dictd_paragraphs(entry)[0].split() == "Abdicator , n. One who gives up power.".split()


def test_clean_dedup_and_split_are_deterministic():
    assert nano_corpus.clean("  Too   short  ") is None
    assert nano_corpus.clean("x = [1, 2, 3]; y = {4: 5}; z = 6 + 7") is None  # mostly symbols
    assert nano_corpus.clean("Dies ist ein völlig anderer Satz über Bäume, Flüsse und Größe") is None  # not English
    assert nano_corpus.clean("It\u2019s a \u201cfine\u201d day \u2014 truly.") == 'It\'s a "fine" day - truly.'
    assert nano_corpus.dedup_key("Hello, World again and again!") == nano_corpus.dedup_key(
        "hello world  again and again"
    )
    keys = [nano_corpus.dedup_key(f"paragraph number {i} of the corpus") for i in range(2000)]
    held_out = [nano_corpus.is_validation(k) for k in keys]
    assert held_out == [nano_corpus.is_validation(k) for k in keys] and 0 < sum(held_out) < 60


def test_token_files_and_batches(tiny_corpus):
    corpus = nano_corpus.TokenCorpus(tiny_corpus)
    assert corpus.splits["train"].dtype == np.uint16 and (corpus.splits["train"] == 1).sum() == 350
    cfg = PretrainConfig(**TINY)
    objective, batch = training_batch(corpus, cfg, 0, 3)
    again = training_batch(corpus, cfg, 0, 3)[1]
    assert objective == "span" and all(torch.equal(batch[k], again[k]) for k in batch)
    assert batch["input_ids"].shape == (4, 24) and batch["attention_mask"].all()
    assert training_batch(corpus, cfg, 2, 3)[0] == "lm"
    starts = nano_corpus.window_starts(1000, 10, 7, 0, seed=0)
    epoch = np.concatenate([nano_corpus.window_starts(1000, 10, 7, i, seed=0) for i in range(14)])[:98]
    assert len(set(epoch.tolist())) == 98 and len(set((epoch % 10).tolist())) == 1 and len(starts) == 7
