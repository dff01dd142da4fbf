"""Loading frozen T5s, aliases, checking hub names, gradient checkpointing (tiny random T5s built in-process)."""

import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_url
from huggingface_hub.errors import RepositoryNotFoundError

import softprompt.model.hub as hub
import softprompt.model.loading as models
from softprompt.errors import SoftpromptError
from softprompt.model.loading import (
    ALIASES,
    enable_gradient_checkpointing,
    load_frozen_t5,
    model_typo_hint,
    resolve_model_name,
)
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5


def test_local_directory_loads_frozen_in_eval_mode(tiny_model_dir):
    frozen = load_frozen_t5(str(tiny_model_dir))
    assert not frozen.model.training
    assert all(not p.requires_grad for p in frozen.model.parameters())
    assert frozen.parameter_count() == sum(p.numel() for p in random_t5().model.parameters())
    assert len(frozen.tokenizer) == 32100


def test_bfloat16_keeps_wo_in_fp32(tiny_model_dir):
    frozen = load_frozen_t5(str(tiny_model_dir), dtype="bfloat16")
    assert frozen.model.shared.weight.dtype == torch.bfloat16
    assert frozen.model.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32


def test_aliases():
    assert resolve_model_name("t5-xl") == "google/t5-xl-lm-adapt"
    assert resolve_model_name("t5-small") == "google-t5/t5-small"
    assert resolve_model_name("flan-t5-base") == "google/flan-t5-base"
    assert resolve_model_name("google/t5-v1_1-large") == "google/t5-v1_1-large"
    assert all(name.startswith("google") for name in ALIASES.values())


def test_t5_nano_resolves_to_the_shipped_directory_and_says_when_it_is_missing(tmp_path, monkeypatch):
    assert resolve_model_name("t5-nano") == str(models.NANO_DIR)
    monkeypatch.setitem(models.EMBEDDED, "t5-nano", tmp_path / "t5-nano")
    with pytest.raises(SoftpromptError, match="t5-nano's files are missing from this installation"):
        resolve_model_name("t5-nano")


@pytest.mark.parametrize(
    "device, message",
    [
        ("foo", "unknown --device 'foo'; use auto, cpu, cuda or cuda:N"),
        ("cuda:64", "--device cuda:64: this machine has"),
    ],
)
def test_a_device_that_is_not_here_is_one_line_before_the_model_loads(device, message, monkeypatch):
    monkeypatch.setattr(
        models.AutoConfig, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the device check")
    )
    with pytest.raises(SoftpromptError, match=re.escape(message)):
        load_frozen_t5("t5-nano", device=device)


def hub_without(repo_id: str):
    """A stand-in for ``huggingface_hub.get_hf_file_metadata`` (same argument names) of a hub that has no ``repo_id``."""

    def get_hf_file_metadata(url: str, timeout: float | None = None) -> None:
        assert url == hf_hub_url(repo_id, "config.json") and timeout
        response = SimpleNamespace(status_code=404, headers={}, request=None)
        raise RepositoryNotFoundError(f"404 Client Error. Repository Not Found for url: {url}.", response=response)

    return get_hf_file_metadata


def test_a_misspelt_model_name_gets_a_suggestion():
    assert [
        model_typo_hint(n)
        for n in (
            "t5-nanoo",
            "flan-t5-bas",
            "t5-large",
            "google/t5-nanoo",
            "my-t5",
            "google/flan-t5-bse",
            "google/flan-t5-base",
        )
    ] == [
        "did you mean 't5-nano'? ",
        "did you mean 'flan-t5-base'? ",
        "",
        "",
        "",
        "did you mean 'google/flan-t5-base'? ",
        "",
    ]


def test_a_name_the_hub_does_not_have_is_one_line_that_says_so(monkeypatch):
    monkeypatch.setattr(hub, "get_hf_file_metadata", hub_without("google/flan-t5-bse"))
    with pytest.raises(SoftpromptError) as error:
        load_frozen_t5("google/flan-t5-bse")
    assert str(error.value) == (
        "model 'google/flan-t5-bse' is neither a local directory nor a model on the Hugging "
        "Face hub; did you mean 'google/flan-t5-base'? check the spelling, log in (hf auth "
        "login) if it is private, or pass a local T5 directory"
    )


def test_offline_a_name_that_is_not_cached_is_one_line_without_asking_the_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SoftpromptError) as error:
        load_frozen_t5("t5-smal")
    assert str(error.value) == (
        "model 't5-smal' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; did "
        "you mean 't5-small'? download it while online (hf download t5-smal), or pass a local "
        "T5 directory"
    )
    with pytest.raises(
        SoftpromptError, match=r"^model 't5 small' is neither a local directory nor a hub name \(Repo id"
    ):
        load_frozen_t5("t5 small")


def test_offline_a_hub_model_in_the_local_cache_loads(tiny_model_dir, tmp_path, monkeypatch):
    """The hub's cache layout: refs/main names the snapshot that holds the files."""
    repo = tmp_path / "models--softprompt-tests--tiny-t5"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    assert load_frozen_t5("softprompt-tests/tiny-t5").config.d_model == 32


def test_an_unreachable_hub_is_one_line_on_stderr_without_retries(tmp_path):
    """The command as a user runs it, with the hub at an address where nothing listens: huggingface_hub would retry
    for half a minute, logging every retry; softprompt asks once and says what to do, before it reads the data
    (here the hub's RTE, which would retry too)."""
    unset = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONWARNINGS")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(
        HF_ENDPOINT="http://127.0.0.1:1", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub")
    )
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "softprompt.cli",
            "train",
            "--model",
            "t5-smal",
            "--task",
            "rte",
            "--steps",
            "1",
            "--output-dir",
            tmp_path / "out",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert process.returncode == 2 and process.stdout == ""
    lines = process.stderr.splitlines()
    assert len(lines) == 1, process.stderr  # no retry warnings
    line = lines[0]
    assert line.startswith("error: cannot reach the Hugging Face hub for model 't5-smal' (")
    assert line.endswith(
        ") and it is not in the local cache; did you mean 't5-small'? to work offline, download it "
        "while online (hf download t5-smal) and set HF_HUB_OFFLINE=1, or pass a local T5 directory"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("with_prefix", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(with_prefix):
    """Checkpointing recomputes activations in backward (an encoder block's self-attention runs twice):
    gradients must not change (prompts and prefixes)."""
    grads = []
    for checkpointing in (False, True):
        frozen = random_t5(seed=4)
        prompts = PromptBank(2, 3, 32)
        torch.nn.init.normal_(prompts.weight, generator=torch.Generator().manual_seed(0))
        prefixes = None
        if with_prefix:
            prefixes = PrefixBank(2, PrefixShape.for_config(frozen.config, 2), reparam_dim=4, reparam_hidden=8)
            prefixes.init_random([0, 1])
        model = PromptedT5(frozen, prompts, prefixes)
        if checkpointing:
            enable_gradient_checkpointing(frozen.model)
        calls = []
        frozen.model.encoder.block[0].layer[0].register_forward_hook(lambda *_: calls.append(1))
        ids = torch.randint(3, 32000, (4, 6), generator=torch.Generator().manual_seed(1))
        labels = torch.randint(3, 32000, (4, 3), generator=torch.Generator().manual_seed(2))
        model(ids, torch.ones_like(ids), torch.tensor([0, 1, 1, 0]), labels=labels).loss.backward()
        assert len(calls) == (2 if checkpointing else 1)
        grads.append([p.grad.clone() for p in model.trainable_parameters()])
    for plain, checkpointed in zip(*grads):
        assert torch.allclose(plain, checkpointed, atol=1e-6)


FAMILY_ALIASES = {  # the released checkpoints of the T5 family, by their hub ids
    "mt5-small": "google/mt5-small",
    "mt5-base": "google/mt5-base",
    "mt5-large": "google/mt5-large",
    "mt5-xl": "google/mt5-xl",
    "mt5-xxl": "google/mt5-xxl",
    "byt5-small": "google/byt5-small",
    "byt5-base": "google/byt5-base",
    "byt5-large": "google/byt5-large",
    "byt5-xl": "google/byt5-xl",
    "byt5-xxl": "google/byt5-xxl",
    "umt5-small": "google/umt5-small",
    "umt5-base": "google/umt5-base",
    "umt5-xl": "google/umt5-xl",
    "umt5-xxl": "google/umt5-xxl",
    "ul2": "google/ul2",
    "flan-ul2": "google/flan-ul2",
    "t5gemma-2b-2b-ul2-it": "google/t5gemma-2b-2b-ul2-it",
    "t5gemma2-270m-270m": "google/t5gemma-2-270m-270m",
    "t5gemma2-1b-1b": "google/t5gemma-2-1b-1b",
    "t5gemma2-4b-4b": "google/t5gemma-2-4b-4b",
}


@pytest.mark.parametrize("alias", list(FAMILY_ALIASES))
def test_a_family_alias_is_checked_once_against_the_hub_under_its_real_id(alias, monkeypatch, tmp_path):
    """With the hub intercepted: the one request ``check_model_available`` makes asks for the real repository's
    config.json (no retries), and a missing repository names the alias and its id."""
    asked = []

    def get_hf_file_metadata(url: str, timeout: float | None = None) -> None:
        asked.append(url)

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(hub, "get_hf_file_metadata", get_hf_file_metadata)
    assert resolve_model_name(alias) == FAMILY_ALIASES[alias]
    assert models.check_model_available(alias) == FAMILY_ALIASES[alias]
    assert asked == [hf_hub_url(FAMILY_ALIASES[alias], "config.json")]
    monkeypatch.setattr(hub, "get_hf_file_metadata", hub_without(FAMILY_ALIASES[alias]))
    with pytest.raises(SoftpromptError, match=f"^model '{alias}' is neither a local directory nor a model on the"):
        models.check_model_available(alias)


def test_a_misspelt_family_alias_gets_a_suggestion():
    assert [model_typo_hint(n) for n in ("mt5-smal", "flan-ul", "google/umt5-bse", "umt5-large")] == [
        "did you mean 'mt5-small'? ",
        "did you mean 'flan-ul2'? ",
        "did you mean 'google/umt5-base'? ",
        "did you mean 'mt5-large'? ",  # umT5 has no large checkpoint; mT5 has
    ]


@pytest.mark.parametrize("config_class, model_type", [("LongT5Config", "longt5")])
def test_refused_members_of_the_family_say_why_and_name_the_supported_ones(config_class, model_type):
    import transformers

    from softprompt.model.families import REFUSED, model_family, supported_families

    with pytest.raises(SoftpromptError) as refused:
        model_family(getattr(transformers, config_class)(), "./model")
    assert str(refused.value) == (
        f"'./model' is a '{model_type}' model, which softprompt does not support: {REFUSED[model_type]}; "
        f"use a model of the supported T5 families: {supported_families()}"
    )
