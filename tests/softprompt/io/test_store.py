"""Run artefacts: safetensors + JSON round trips, folded prefixes, compatibility checks
(tiny random T5 configs built in-process)."""

import json

import pytest
import safetensors.torch
import torch

from softprompt.errors import SoftpromptError
from softprompt.io.store import PREFIXES_REPARAM, load_banks, model_fingerprint, read_meta, save_run
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5


def _meta(config, prefixes=None):
    return {
        "model": {"name": "tiny", **model_fingerprint(config)},
        "task": {"name": "rte", "kind": "classification"},
        "n_prompts": 2,
        "seeds": [0, 1],
        "prompts": {"length": 3},
        "prefixes": prefixes,
    }


def test_round_trip_with_reparameterised_prefixes(tmp_path):
    config = random_t5().config
    prompts = PromptBank(2, 3, 32)
    torch.nn.init.normal_(prompts.weight)
    prefixes = PrefixBank(2, PrefixShape.for_config(config, 4, ("encoder", "cross")), reparam_dim=5, reparam_hidden=7)
    prefixes.init_random([0, 1])
    save_run(
        tmp_path, _meta(config, {"length": 4, "sites": ["encoder", "cross"]}), prompts, prefixes, keep_reparam=True
    )
    meta, loaded_prompts, loaded_prefixes = load_banks(tmp_path, config)
    assert torch.equal(loaded_prompts.weight, prompts.weight)
    assert not loaded_prefixes.reparameterised  # inference loads the folded prefixes
    for site, kv in prefixes.full().items():
        assert torch.allclose(loaded_prefixes.kv[site], kv, atol=1e-6)
    unfolded = safetensors.torch.load_file(tmp_path / PREFIXES_REPARAM)
    assert set(unfolded) == {"embedding", "w1", "b1", "w2", "b2", "anchor"}
    assert set(meta["files"]) == {"prompts.safetensors", "prefixes.safetensors", PREFIXES_REPARAM}
    assert meta["format_version"] == 1 and "torch" in meta["library"]


def test_fingerprint_ignores_dtype_but_not_architecture():
    a, b = random_t5().config, random_t5().config
    b.dtype = "bfloat16"
    assert model_fingerprint(a)["config_hash"] == model_fingerprint(b)["config_hash"]
    assert model_fingerprint(a)["config_hash"] != model_fingerprint(random_t5(num_layers=3).config)["config_hash"]


def test_prefix_run_refuses_a_model_with_other_heads(tmp_path):
    config = random_t5().config
    prefixes = PrefixBank(2, PrefixShape.for_config(config, 2))
    save_run(tmp_path, _meta(config, {"length": 2, "sites": ["encoder", "decoder", "cross"]}), None, prefixes)
    with pytest.raises(SoftpromptError, match="d_kv"):
        load_banks(tmp_path, random_t5(d_kv=16).config)


def test_read_meta_rejects_newer_format(tmp_path):
    save_run(tmp_path, _meta(random_t5().config), PromptBank(2, 3, 32), None)
    meta = json.loads((tmp_path / "softprompt.json").read_text())
    (tmp_path / "softprompt.json").write_text(json.dumps(meta | {"format_version": 2}))
    with pytest.raises(SoftpromptError, match="newer"):
        read_meta(tmp_path)


@pytest.mark.parametrize("family", ["t5", "mt5", "umt5"])
def test_the_family_is_recorded_and_checked_before_the_shapes(family, tmp_path):
    """A run records its model's family; a model of another family with the same shapes (mT5 and umT5 here, tiny
    random models of their real config classes) is refused in one line naming both."""
    config = random_t5(family=family).config
    save_run(tmp_path, _meta(config), PromptBank(2, 3, 32), None)
    assert read_meta(tmp_path)["model"]["family"] == family
    load_banks(tmp_path, config)
    other = "umt5" if family != "umt5" else "mt5"
    with pytest.raises(SoftpromptError, match=f"was trained on a {family} model .* but this is a {other} model;"):
        load_banks(tmp_path, random_t5(family=other).config)
