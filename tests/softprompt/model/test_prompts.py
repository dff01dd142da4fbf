"""Prompt bank initialisers, on the real T5 vocabulary and a tiny random T5 (built in-process)."""

import pytest
import torch

from softprompt.errors import SoftpromptError
from softprompt.model.prompts import PromptBank, frequent_token_ids, init_bank, initial_prompt, parse_init
from softprompt.model.random_models import random_t5


@pytest.fixture(scope="module")
def frozen():
    return random_t5()


def test_frequent_tokens_exclude_specials_and_sentinels(frozen):
    ids = frequent_token_ids(frozen.tokenizer)
    tokens = frozen.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert len(ids) == 5000 and len(set(ids.tolist())) == 5000
    assert not set(ids.tolist()) & set(frozen.tokenizer.all_special_ids)
    assert not any(t.startswith("<extra_id_") for t in tokens)
    assert "▁the" in tokens[:20]  # the highest-scoring pieces are the common words


def test_random_uniform_range_and_per_prompt_seeds(frozen):
    embeddings = frozen.model.get_input_embeddings().weight
    a = initial_prompt("random-uniform", 7, embeddings, frozen.tokenizer, seed=1)
    b = initial_prompt("random-uniform", 7, embeddings, frozen.tokenizer, seed=2)
    assert a.shape == (7, 32) and a.min() >= -0.5 and a.max() <= 0.5
    assert not torch.equal(a, b)
    assert torch.equal(a, initial_prompt("random-uniform", 7, embeddings, frozen.tokenizer, seed=1))


def test_sampled_vocab_rows_are_frequent_token_embeddings(frozen):
    embeddings = frozen.model.get_input_embeddings().weight
    prompt = initial_prompt("sampled-vocab", 10, embeddings, frozen.tokenizer, seed=0)
    pool = embeddings[frequent_token_ids(frozen.tokenizer)]
    for row in prompt:
        assert (pool == row).all(dim=1).any()


def test_class_label_init_averages_multi_token_labels(frozen):
    embeddings = frozen.model.get_input_embeddings().weight
    words = ("entailment", "not_entailment")
    prompt = initial_prompt("class-label", 5, embeddings, frozen.tokenizer, seed=0, label_words=words)
    for position, word in enumerate(words):
        ids = frozen.tokenizer(word, add_special_tokens=False).input_ids
        assert torch.allclose(prompt[position], embeddings[ids].mean(0))
    assert len(frozen.tokenizer("not_entailment", add_special_tokens=False).input_ids) > 1


def test_text_init_repeats_and_trims(frozen):
    embeddings = frozen.model.get_input_embeddings().weight
    ids = frozen.tokenizer("classify this", add_special_tokens=False).input_ids
    prompt = initial_prompt('text:"classify this"', len(ids) * 2 + 1, embeddings, frozen.tokenizer, seed=0)
    expected = embeddings[torch.tensor((ids * 3)[: len(ids) * 2 + 1])]
    assert torch.equal(prompt, expected)


def test_init_bank_gives_each_prompt_its_seed(frozen):
    bank = PromptBank(3, 4, 32)
    embeddings = frozen.model.get_input_embeddings().weight
    init_bank(bank, "sampled-vocab", embeddings, frozen.tokenizer, seeds=[5, 6, 5])
    assert torch.equal(bank.weight[0], bank.weight[2]) and not torch.equal(bank.weight[0], bank.weight[1])
    assert torch.equal(bank(torch.tensor([1, 0])), bank.weight[[1, 0]])


@pytest.mark.parametrize("spec", ["uniform", "text:", 'text:""'])
def test_bad_init_specs(spec):
    with pytest.raises(SoftpromptError):
        parse_init(spec)


def test_class_label_needs_label_words(frozen):
    with pytest.raises(SoftpromptError, match="label words"):
        initial_prompt("class-label", 3, frozen.model.get_input_embeddings().weight, frozen.tokenizer, seed=0)


def test_byte_tokenizer_inits_work_over_bytes():
    """ByT5 (a tiny random T5 with its 384 byte rows and ``ByT5Tokenizer``): sampled-vocab draws the bytes of text
    (printable ASCII and space; it keeps no piece scores), class-label averages a label word's byte embeddings."""
    from transformers import ByT5Tokenizer

    byt5 = random_t5(vocab_size=384, tokenizer=ByT5Tokenizer())
    embeddings = byt5.model.get_input_embeddings().weight
    pool = frequent_token_ids(byt5.tokenizer).tolist()
    assert pool == [3 + byte for byte in range(0x20, 0x7F)]
    assert byt5.tokenizer.decode(pool) == "".join(map(chr, range(0x20, 0x7F)))
    prompt = initial_prompt("sampled-vocab", 12, embeddings, byt5.tokenizer, seed=0)
    rows = [int((embeddings == row).all(dim=1).nonzero()) for row in prompt]
    assert set(rows) <= set(pool) and len(set(rows)) > 1
    prompt = initial_prompt("class-label", 4, embeddings, byt5.tokenizer, seed=0, label_words=("yes", "no"))
    torch.testing.assert_close(prompt[0], embeddings[[3 + ord(c) for c in "yes"]].mean(0))
    torch.testing.assert_close(prompt[1], embeddings[[3 + ord(c) for c in "no"]].mean(0))


def test_a_tokenizer_with_nothing_to_sample_is_one_line():
    """The issue's tokenizer built without its vocabulary file holds only special tokens and sentinels: sampled-vocab
    says so instead of failing inside torch.randint."""
    import tempfile
    from pathlib import Path

    from transformers import AutoTokenizer, T5Config

    with tempfile.TemporaryDirectory() as bare:
        T5Config().save_pretrained(bare)
        tokenizer = AutoTokenizer.from_pretrained(Path(bare))
    with pytest.raises(SoftpromptError, match="^sampled-vocab init found no ordinary tokens in the tokenizer"):
        initial_prompt("sampled-vocab", 3, torch.zeros(32128, 8), tokenizer, seed=0)
