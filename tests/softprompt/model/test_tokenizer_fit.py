"""Tokenizers that fit their model (``check_vocab``, ``check_tokenizer_reads``), and the shipped model folders that
load as is with plain ``from_pretrained``.

The case of issue 43: ``AutoTokenizer.from_pretrained`` on a folder with a T5 config and no tokenizer files builds,
with transformers 5.x, a tokenizer of about a hundred pieces that reads every word as ``<unk>``; a model folder saved
with it trained without complaint (``--init random-uniform``) or failed with a traceback (sampled-vocab init). Now
``train``, ``ensemble-eval``, ``predict`` and ``serve`` refuse it in one line before anything runs. The models are
tiny random T5s built in-process (``random_t5``, the session's ``tiny_model_dir``).
"""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, ByT5Tokenizer, T5ForConditionalGeneration

from softprompt.errors import SoftpromptError
from softprompt.model.loading import (
    EMBEDDED,
    TOKENIZER_FILES,
    check_tokenizer_reads,
    load_frozen_t5,
    load_tokenizer,
)
from softprompt.serve.config import ServeConfig
from softprompt.serve.server import build_engine
from tests.softprompt.cli.helpers import RTE, assert_no_artefacts, assert_one_line_error, run_cli, train_args

DATA = {"train": RTE / "train.jsonl", "val": RTE / "val.jsonl"}
CHINESE = ["这是 一个 很好 的 句子", "我们 喜欢 这部 电影"]  # T5's English/German/French/Romanian pieces lack these


@pytest.fixture(scope="module")
def unk_model_dir(tiny_model_dir, tmp_path_factory):
    """A tiny random T5 saved with the tokenizer transformers builds for a folder without tokenizer files."""
    bare = tmp_path_factory.mktemp("bare")
    shutil.copy(tiny_model_dir / "config.json", bare)
    tokenizer = AutoTokenizer.from_pretrained(bare)
    assert len(tokenizer) < 200 and set(tokenizer("the movie was great").input_ids[:-1]) <= {2, 3}  # <unk>, '▁'
    model = tmp_path_factory.mktemp("unk-model")
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, model)
    tokenizer.save_pretrained(model)
    return model


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    """A tiny trained RTE run on the good model."""
    out = tmp_path_factory.mktemp("runs") / "rte"
    result = run_cli(*train_args(tiny_model_dir, out, DATA))
    assert result.exit_code == 0, result.stderr
    return out


def test_a_tokenizer_far_smaller_than_the_model_is_refused_in_one_line(unk_model_dir):
    with pytest.raises(SoftpromptError) as refused:
        load_frozen_t5(str(unk_model_dir))
    size = len(AutoTokenizer.from_pretrained(unk_model_dir))
    assert str(refused.value) == (
        f"tokenizer of {str(unk_model_dir)!r} has {size} tokens for the model's 32128 embedding rows, so it is not "
        "the model's own (one built without its vocabulary file reads every word as <unk>); save the tokenizer the "
        "model was trained with beside it (tokenizer.save_pretrained(DIR))"
    )


@pytest.mark.parametrize("init", ["random-uniform", "sampled-vocab"])
def test_train_refuses_it_before_writing_anything(init, unk_model_dir, tmp_path):
    """The issue's two outcomes (exit 0 reading every input as <unk>; a RuntimeError traceback) are one line now."""
    result = run_cli(*train_args(unk_model_dir, tmp_path / "out", DATA, "--init", init))
    assert_one_line_error(result, "tokenizer of", "embedding rows, so it is not the model's own")
    assert_no_artefacts(tmp_path / "out")


def test_ensemble_eval_predict_and_serve_refuse_it_in_one_line(run, unk_model_dir, tmp_path):
    fragments = ("tokenizer of", "embedding rows, so it is not the model's own")
    evaluated = run_cli(
        "ensemble-eval", "--prompts", run, "--model", unk_model_dir, "--data-file", DATA["val"], "--output",
        tmp_path / "eval.json",
    )  # fmt: skip
    assert_one_line_error(evaluated, *fragments)
    rows = [{k: v for k, v in json.loads(line).items() if k != "label"} for line in DATA["val"].open()][:2]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    predicted = run_cli(
        "predict", "--prompts", run, "--model", unk_model_dir, "--input", tmp_path / "in.jsonl", "--output",
        tmp_path / "out.jsonl",
    )  # fmt: skip
    assert_one_line_error(predicted, *fragments)
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "out.jsonl").exists()
    with pytest.raises(SoftpromptError) as refused:
        build_engine(ServeConfig(prompts=(str(run),), model=str(unk_model_dir), device="cpu"))
    assert "\n" not in str(refused.value) and all(f in str(refused.value) for f in fragments)


def test_a_tokenizer_that_reads_most_input_words_as_unknown_is_refused():
    """T5's vocabulary (English, German, French, Romanian) reads Chinese as <unk>: refused, naming the count; English
    and a byte tokenizer (no unknown bytes) pass."""
    t5 = load_tokenizer()
    with pytest.raises(SoftpromptError) as refused:
        check_tokenizer_reads(t5, CHINESE, "t5-nano")
    assert str(refused.value) == (
        "the tokenizer of 't5-nano' reads 9 of the first 9 input words as <unk>; it does not fit these inputs: use "
        "the tokenizer the model was trained with (saved beside the model) or a model whose vocabulary covers the "
        "inputs' language"
    )
    check_tokenizer_reads(t5, ["the movie was great", "a gem of a film 这"], "t5-nano")  # 1 unknown word of 9
    check_tokenizer_reads(ByT5Tokenizer(), CHINESE, "byt5")
    check_tokenizer_reads(t5, [], "t5-nano")


def test_train_refuses_inputs_its_tokenizer_cannot_read(tiny_model_dir, tmp_path):
    rows = [{"premise": text, "hypothesis": text, "label": "entailment", "idx": i} for i, text in enumerate(CHINESE)]
    (tmp_path / "zh.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows * 4))
    data = {"train": tmp_path / "zh.jsonl", "val": DATA["val"]}
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data))
    assert_one_line_error(result, "input words as <unk>; it does not fit these inputs")
    assert_no_artefacts(tmp_path / "out")


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_every_shipped_model_folder_loads_as_is_with_from_pretrained(name):
    """Model and tokenizer, with plain transformers: the vendored T5 vocabulary (identical files), which tokenizes
    English into real pieces (no <unk>) and decodes back."""
    folder = EMBEDDED[name]
    for file in TOKENIZER_FILES:
        assert (folder / file).read_bytes() == (EMBEDDED["t5-nano"].parent / "t5-tokenizer" / file).read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == 32100
    ids = tokenizer("The movie was great, and I would watch it again.").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "▁The", "▁movie", "▁was", "▁great", ",", "▁and", "▁I", "▁would", "▁watch", "▁it", "▁again", ".", "</s>",
    ]  # fmt: skip
    assert tokenizer.decode(ids, skip_special_tokens=True) == "The movie was great, and I would watch it again."
    assert type(AutoModelForSeq2SeqLM.from_pretrained(folder)) is T5ForConditionalGeneration
