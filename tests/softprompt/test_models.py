"""Loading frozen T5s, aliases, gradient checkpointing (tiny random T5s built in-process)."""

import re

import pytest
import torch

from softprompt.errors import SoftpromptError
from softprompt.models import ALIASES, enable_gradient_checkpointing, load_frozen_t5, random_t5, resolve_model_name
from softprompt.prefixes import PrefixBank, PrefixShape
from softprompt.prompted import PromptedT5
from softprompt.prompts import PromptBank


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
    import softprompt.models as models

    assert resolve_model_name("t5-nano") == str(models.NANO_DIR)
    monkeypatch.setitem(models.EMBEDDED, "t5-nano", tmp_path / "t5-nano")
    with pytest.raises(SoftpromptError, match="t5-nano's files are missing from this installation"):
        resolve_model_name("t5-nano")


@pytest.mark.parametrize("device, message", [
    ("foo", "unknown --device 'foo'; use auto, cpu, cuda or cuda:N"),
    ("cuda:64", "--device cuda:64: this machine has"),
])
def test_a_device_that_is_not_here_is_one_line_before_the_model_loads(device, message, monkeypatch):
    import softprompt.models as models

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the device check"))
    with pytest.raises(SoftpromptError, match=re.escape(message)):
        load_frozen_t5("t5-nano", device=device)


def test_a_misspelt_model_name_gets_a_suggestion(monkeypatch):
    """Offline, an unknown name cannot be told from a hub id; a near miss of an embedded model or alias gets a guess."""
    from softprompt.models import model_typo_hint

    assert [model_typo_hint(n) for n in ("t5-nanoo", "flan-t5-bas", "t5-large", "google/t5-nanoo", "my-t5")] == [
        "did you mean 't5-nano'? ", "did you mean 'flan-t5-base'? ", "", "", ""]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SoftpromptError, match=r"^cannot load model config for 't5-nanoo' \(.*\); did you mean 't5-nano'\? pass a local"):
        load_frozen_t5("t5-nanoo")


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
