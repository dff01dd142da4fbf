"""PEFT prompt-tuning adapters <-> softprompt runs: exact round trips both ways, and clear refusals.

Models are tiny random T5s (``random_t5``) saved to local directories: same code paths as real
checkpoints, no hub access. PEFT itself loads every exported adapter and writes every imported one.
"""

import json

import pytest
import torch
from click.testing import CliRunner
from peft import LoraConfig, PeftModel, PromptTuningConfig, TaskType, get_peft_model
from safetensors.torch import load_file
from transformers import AutoConfig, T5ForConditionalGeneration

from softprompt.errors import SoftpromptError
from softprompt.io.peft import export_peft, import_peft
from softprompt.io.store import load_banks, model_fingerprint, read_meta, save_run
from softprompt.model.loading import load_frozen_t5, save_model_dir
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from tests.conftest import TEST_DATA
from tests.softprompt.model.family_helpers import PEFT_GEOMETRY, build

P, N = 5, 3


def _inputs(seed=0, batch=3, length=9):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 32000, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded row
    return ids, mask


def _meta(model_dir, config, prompts=True, prefixes=None):
    """Run metadata shaped like ``softprompt.training.run_meta.run_meta``."""
    return {
        "model": {"name": str(model_dir), **model_fingerprint(config), "parameters": 1},
        "trainable_parameters": 1,
        "task": {
            "name": "rte",
            "kind": "classification",
            "label_words": ["entailment", "not_entailment"],
            "metric": "accuracy",
        },
        "n_prompts": N,
        "seeds": list(range(N)),
        "prompts": {"length": P, "init": "random-uniform"} if prompts else None,
        "prefixes": prefixes,
        "best": [],
    }


def _bank(d, seed=0):
    bank = PromptBank(N, P, d)
    with torch.no_grad():
        bank.weight.copy_(torch.randn(N, P, d, generator=torch.Generator().manual_seed(seed)) * 3)
    return bank


def _prefix_bank(config, n=N):
    shape = PrefixShape.for_config(config, 3, ("encoder", "decoder", "cross"))
    prefixes = PrefixBank(n, shape)
    prefixes.init_random(list(range(n)))
    return prefixes, {"length": 3, "sites": list(shape.sites), "init": "random", "reparam_dim": 0}


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return AutoConfig.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, config, tmp_path_factory):
    """A softprompt run of N random prompts on the tiny model."""
    path = tmp_path_factory.mktemp("run")
    save_run(path, _meta(tiny_model_dir, config), _bank(config.d_model), None)
    return path


@pytest.fixture(scope="module")
def peft_adapter(tiny_model_dir, tmp_path_factory):
    """A prompt-tuning adapter written by PEFT itself; every row (decoder rows too) random."""
    model = get_peft_model(
        T5ForConditionalGeneration.from_pretrained(tiny_model_dir),
        PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4),
    )
    weight = model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(7)) * 3)
    path = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(path)
    return path


def _peft_from(tiny_model_dir, adapter_dir):
    return PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(tiny_model_dir), adapter_dir).eval()


def test_export_is_loaded_by_peft_with_identical_logits_and_generations(tiny_model_dir, run_dir, tmp_path):
    out = tmp_path / "adapter"
    assert export_peft(run_dir, 2, out) == []
    peft = _peft_from(tiny_model_dir, out)
    config = peft.peft_config["default"]
    assert (
        config.peft_type == "PROMPT_TUNING"
        and config.num_virtual_tokens == P
        and config.num_transformer_submodules == 2
    )
    assert config.base_model_name_or_path == str(tiny_model_dir.resolve())
    assert load_file(out / "adapter_model.safetensors")["prompt_embeddings"].shape == (2 * P, 32)

    frozen = load_frozen_t5(str(tiny_model_dir))
    _, bank, _ = load_banks(run_dir, frozen.config)
    ours = PromptedT5(frozen, prompts=bank)
    ids, mask = _inputs()
    rows = torch.full((3,), 2)
    labels = torch.randint(3, 32000, (3, 4))
    with torch.no_grad():
        theirs = peft(input_ids=ids, attention_mask=mask, labels=labels).logits
        mine = ours(ids, mask, rows, labels=labels).logits
        other = ours(ids, mask, torch.zeros(3, dtype=torch.long), labels=labels).logits
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert not torch.allclose(other, theirs, atol=1e-3)  # it really is prompt 2

    kwargs = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    generated = ours.generate(ids, mask, rows, **kwargs)
    assert torch.equal(peft.generate(input_ids=ids, attention_mask=mask, **kwargs), generated)
    assert len(set(generated[:, 1:].flatten().tolist())) > 1  # not a degenerate constant output


def test_import_of_a_peft_saved_adapter_gives_peft_logits(tiny_model_dir, peft_adapter, tmp_path):
    out = tmp_path / "imported"
    import_peft(peft_adapter, out, "rte", None)
    meta = read_meta(out)
    assert (
        meta["n_prompts"] == 1
        and meta["prompts"]["length"] == 4
        and meta["task"]["label_words"] == ["entailment", "not_entailment"]
    )
    assert meta["model"]["name"] == str(tiny_model_dir) and meta["model"]["parameters"] > 0

    frozen = load_frozen_t5(str(tiny_model_dir))
    _, bank, prefixes = load_banks(out, frozen.config)
    assert prefixes is None and bank.weight.shape == (1, 4, 32)
    ours = PromptedT5(frozen, prompts=bank)
    peft = _peft_from(tiny_model_dir, peft_adapter)
    ids, mask = _inputs(seed=1)
    labels = torch.randint(3, 32000, (3, 4))
    with torch.no_grad():
        theirs = peft(input_ids=ids, attention_mask=mask, labels=labels).logits
        mine = ours(ids, mask, torch.zeros(3, dtype=torch.long), labels=labels).logits
    assert torch.allclose(mine, theirs, atol=1e-5)

    # export it back: PEFT's encoder rows survive bit for bit
    back = tmp_path / "back"
    export_peft(out, 0, back)
    original = load_file(peft_adapter / "adapter_model.safetensors")["prompt_embeddings"]
    assert torch.equal(load_file(back / "adapter_model.safetensors")["prompt_embeddings"][:4], original[:4])


def test_imported_run_is_accepted_by_ensemble_eval(tiny_model_dir, peft_adapter, tmp_path):
    from softprompt.cli.app import cli

    val = TEST_DATA / "superglue" / "rte" / "val.jsonl"
    out = tmp_path / "imported"
    import_peft(peft_adapter, out, "rte", None)
    report = tmp_path / "eval.json"
    result = CliRunner().invoke(
        cli,
        [
            "ensemble-eval",
            "--prompts",
            str(out),
            "--task",
            "rte",
            "--data-file",
            str(val),
            "--limit",
            "4",
            "--output",
            str(report),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert report.is_file()


@pytest.mark.parametrize("kind", ["classification", "generation"])
def test_imported_custom_run_predicts_with_its_input_template_alone(tiny_model_dir, peft_adapter, tmp_path, kind):
    """A PEFT import records its task's kind and label words but not how inputs look: `predict` takes
    --input-template alone and answers as the full custom-task options would; without it, one line."""
    from softprompt.cli.app import cli

    words = ["entailment", "not_entailment"] if kind == "classification" else None
    out = tmp_path / "imported"
    import_peft(peft_adapter, out, "entail", words)
    inputs = TEST_DATA / "superglue" / "rte" / "val.jsonl"
    template = ["--input-template", "{premise} question: {hypothesis}"]
    full = (
        ["--label-column", "label", "--label-words", "entailment=entailment,not_entailment=not_entailment"]
        if words
        else ["--target-column", "idx"]
    )
    decoding = [] if words else ["--max-new-tokens", "3"]
    answers = []
    for options in (template + decoding, ["--task", "custom", "--task-name", "entail", *template, *full, *decoding]):
        output = tmp_path / f"{len(answers)}.jsonl"
        result = CliRunner().invoke(
            cli,
            ["predict", "--prompts", str(out), "--input", str(inputs), "--output", str(output), "--quiet", *options],
        )
        assert result.exit_code == 0, result.output
        assert "prompts of entail" in result.output
        answers.append([json.loads(line) for line in output.read_text().splitlines()])
    assert len(answers[0]) == 24 and answers[0] == answers[1]
    refused = CliRunner().invoke(
        cli, ["predict", "--prompts", str(out), "--input", str(inputs), "--output", str(tmp_path / "x.jsonl")]
    )
    assert isinstance(refused.exception, SoftpromptError)
    assert "does not record how task 'entail' formats its inputs; give its input format with --input-template" in str(
        refused.exception
    )


def test_custom_task_metadata(peft_adapter, tmp_path):
    import_peft(peft_adapter, tmp_path / "cls", "reviews", ["negative", "positive"])
    assert read_meta(tmp_path / "cls")["task"] == {
        "name": "reviews",
        "kind": "classification",
        "label_words": ["negative", "positive"],
        "metric": "accuracy",
    }
    import_peft(peft_adapter, tmp_path / "gen", "summaries", None)
    assert read_meta(tmp_path / "gen")["task"]["kind"] == "generation"
    with pytest.raises(SoftpromptError, match="label words"):
        import_peft(peft_adapter, tmp_path / "bad", "rte", ["yes", "no"])
    with pytest.raises(SoftpromptError, match="--task 'my reviews' is not usable"):  # the rule of train's --task-name
        import_peft(peft_adapter, tmp_path / "bad", "my reviews", ["negative", "positive"])


def test_import_peft_command_reads_label_words_in_either_form_and_names_a_likely_typo(peft_adapter, tmp_path):
    """`import-peft --label-words` takes train's LABEL=WORD pairs as well as plain words; an unknown task name
    close to a built-in one, imported as a custom generation task, gets a note."""
    from softprompt.cli.app import cli

    runner = CliRunner()
    for n, words in enumerate(("negative,positive", "0=negative,1=positive")):
        result = runner.invoke(
            cli,
            [
                "import-peft",
                str(peft_adapter),
                "--out",
                str(tmp_path / f"r{n}"),
                "--task",
                "reviews",
                "--label-words",
                words,
            ],
        )
        assert result.exit_code == 0 and "note:" not in result.output, result.output
        assert read_meta(tmp_path / f"r{n}")["task"]["label_words"] == ["negative", "positive"]
    result = runner.invoke(cli, ["import-peft", str(peft_adapter), "--out", str(tmp_path / "typo"), "--task", "sst2x"])
    assert result.exit_code == 0
    assert (
        "note: 'sst2x' is not a built-in task (did you mean 'sst2'?); imported as a custom generation task"
        in result.output
    )


def test_export_then_import_commands_round_trip_a_prompt(run_dir, config, tmp_path):
    """`export-peft` and `import-peft` write to --output-dir (--out, their first spelling, still works)."""
    from softprompt.cli.app import cli

    runner = CliRunner()
    result = runner.invoke(
        cli, ["export-peft", str(run_dir), "--prompt", "1", "--output-dir", str(tmp_path / "adapter")]
    )
    assert result.exit_code == 0 and "wrote PEFT adapter" in result.output, result.output
    result = runner.invoke(
        cli, ["import-peft", str(tmp_path / "adapter"), "--out", str(tmp_path / "back"), "--task", "rte"]
    )
    assert result.exit_code == 0, result.output
    _, original, _ = load_banks(run_dir, config)
    _, back, _ = load_banks(tmp_path / "back", config)
    assert back.weight.shape[0] == 1 and torch.equal(back.weight[0], original.weight[1])


def test_prompt_plus_prefix_run_exports_its_prompt_with_a_note(tiny_model_dir, config, tmp_path):
    run = tmp_path / "run"
    prefixes, spec = _prefix_bank(config)
    bank = _bank(config.d_model, seed=1)
    save_run(run, _meta(tiny_model_dir, config, prefixes=spec), bank, prefixes)
    notes = export_peft(run, 1, tmp_path / "adapter")
    assert len(notes) == 1 and "deep prefixes" in notes[0] and "left out" in notes[0]
    rows = load_file(tmp_path / "adapter" / "adapter_model.safetensors")["prompt_embeddings"]
    assert torch.equal(rows[:P], bank.weight[1].detach()) and not rows[P:].any()


def test_prefix_only_run_is_refused(tiny_model_dir, config, tmp_path):
    run = tmp_path / "run"
    prefixes, spec = _prefix_bank(config)
    save_run(run, _meta(tiny_model_dir, config, prompts=False, prefixes=spec), None, prefixes)
    with pytest.raises(SoftpromptError, match="deep prefixes.*cannot be exported to PEFT"):
        export_peft(run, 0, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize("index", [3, -1])
def test_bad_prompt_index(run_dir, tmp_path, index):
    with pytest.raises(SoftpromptError, match=r"index in 0\.\.2"):
        export_peft(run_dir, index, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_export_of_a_run_on_an_embedded_model_names_its_folder_so_that_peft_loads_it_alone(tmp_path):
    from peft import AutoPeftModelForSeq2SeqLM

    from softprompt.model.loading import NANO_DIR

    frozen = load_frozen_t5("t5-nano")
    save_run(tmp_path / "run", _meta("t5-nano", frozen.config), _bank(frozen.config.d_model), None)
    assert export_peft(tmp_path / "run", 1, tmp_path / "adapter") == []
    peft = AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter")  # no hub: "t5-nano" is no hub id
    assert peft.peft_config["default"].base_model_name_or_path == str(NANO_DIR.resolve())
    assert torch.equal(peft.prompt_encoder["default"].embedding.weight[:P], _bank(frozen.config.d_model).weight[1])


def test_export_output_directory_rules(run_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SoftpromptError, match="not a PEFT adapter"):
        export_peft(run_dir, 0, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"

    out = tmp_path / "adapter"
    export_peft(run_dir, 0, out)
    with pytest.raises(SoftpromptError, match="--overwrite"):
        export_peft(run_dir, 1, out)
    with pytest.raises(SoftpromptError, match="not a softprompt run"):  # import never replaces an adapter
        import_peft(out, out, "rte", None, overwrite=True)
    export_peft(run_dir, 1, out, overwrite=True)
    assert torch.equal(
        load_file(out / "adapter_model.safetensors")["prompt_embeddings"][:P],
        load_file(run_dir / "prompts.safetensors")["prompts"][1],
    )
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_lora_adapter_is_refused(tiny_model_dir, tmp_path):
    model = get_peft_model(
        T5ForConditionalGeneration.from_pretrained(tiny_model_dir),
        LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=2, target_modules=["q", "v"]),
    )
    model.save_pretrained(tmp_path / "lora")
    with pytest.raises(SoftpromptError, match="LORA adapter, not PROMPT_TUNING"):
        import_peft(tmp_path / "lora", tmp_path / "run", "rte", None)
    assert not (tmp_path / "run").exists()


def test_pickle_weights_are_refused_without_loading(peft_adapter, tmp_path):
    adapter = tmp_path / "bin"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text((peft_adapter / "adapter_config.json").read_text())
    (adapter / "adapter_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(SoftpromptError, match="pickle.*safe_serialization=True"):
        import_peft(adapter, tmp_path / "run", "rte", None)


def test_missing_files_are_reported(peft_adapter, tmp_path):
    with pytest.raises(SoftpromptError, match="does not exist"):
        import_peft(tmp_path / "nowhere", tmp_path / "run", "rte", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SoftpromptError, match="no adapter_config.json"):
        import_peft(empty, tmp_path / "run", "rte", None)
    (empty / "adapter_config.json").write_text((peft_adapter / "adapter_config.json").read_text())
    with pytest.raises(SoftpromptError, match="no adapter_model.safetensors"):
        import_peft(empty, tmp_path / "run", "rte", None)
    with pytest.raises(SoftpromptError, match="not a softprompt run"):
        export_peft(empty, 0, tmp_path / "adapter")


def test_d_model_mismatch_is_refused(peft_adapter, tmp_path):
    small = tmp_path / "small-t5"
    save_model_dir(random_t5(d_model=16, d_ff=32, num_heads=2), small)
    with pytest.raises(SoftpromptError, match="width 32 but model .* has d_model=16"):
        import_peft(peft_adapter, tmp_path / "run", "rte", None, model_name_or_path=str(small))
    assert not (tmp_path / "run").exists()


def test_inconsistent_adapter_config_is_refused(peft_adapter, tmp_path):
    adapter = tmp_path / "odd"
    adapter.mkdir()
    config = json.loads((peft_adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"num_virtual_tokens": 3}))
    (adapter / "adapter_model.safetensors").write_bytes((peft_adapter / "adapter_model.safetensors").read_bytes())
    with pytest.raises(SoftpromptError, match=r"shape \(8, 32\).*\(6, token_dim\)"):
        import_peft(adapter, tmp_path / "run", "rte", None)


@pytest.mark.parametrize("family", ["mt5", "umt5", "t5gemma", "t5gemma2"])
def test_an_adapter_of_another_family_imports_and_exports_with_peft_logits(family, tmp_path):
    """PEFT prompt-tunes mT5, umT5, T5Gemma and T5Gemma 2 as it does T5 (its own seq2seq path): an adapter PEFT saved
    for a tiny random model of the family's real classes (``family_helpers.build``) imports to a run recording the
    family, gives PEFT's logits, and exports back bit for bit (T5Gemma 2, whose embedding layer scales PEFT's rows but
    not softprompt's table-space prompts: to float rounding); the base model's parameters are counted with the
    family's class."""
    model_dir = tmp_path / family
    save_model_dir(build(family, seed=2, ids_only=False), model_dir)
    frozen = load_frozen_t5(str(model_dir))
    model_class = type(frozen.model)
    peft_geometry = PEFT_GEOMETRY.get(family, lambda config: {})(frozen.config)
    peft = get_peft_model(
        model_class.from_pretrained(model_dir),
        PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4, **peft_geometry),
    )
    weight = peft.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(7)) * 3)
    peft.save_pretrained(tmp_path / "adapter")
    import_peft(tmp_path / "adapter", tmp_path / "run", "rte", None, str(model_dir))
    meta = read_meta(tmp_path / "run")
    assert meta["model"]["family"] == family and meta["model"]["parameters"] == frozen.parameter_count()
    _, bank, _ = load_banks(tmp_path / "run", frozen.config)
    ids, mask = _inputs(seed=1)
    labels = torch.randint(3, 32000, (3, 4))
    theirs = PeftModel.from_pretrained(model_class.from_pretrained(model_dir), tmp_path / "adapter").eval()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask, labels=labels).logits
        mine = PromptedT5(frozen, prompts=bank)(ids, mask, torch.zeros(3, dtype=torch.long), labels=labels).logits
    torch.testing.assert_close(mine, expected, atol=1e-5, rtol=1e-5)
    export_peft(tmp_path / "run", 0, tmp_path / "back")
    original = load_file(tmp_path / "adapter" / "adapter_model.safetensors")["prompt_embeddings"]
    back = load_file(tmp_path / "back" / "adapter_model.safetensors")["prompt_embeddings"]
    tolerance = dict(atol=0, rtol=0) if frozen.geometry.input_scale == 1.0 else dict(atol=0, rtol=1e-6)
    torch.testing.assert_close(back[:4], original[:4], **tolerance)
