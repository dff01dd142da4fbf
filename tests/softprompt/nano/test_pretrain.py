"""Pre-training (softprompt.nano.pretrain): schedule, optimiser, objective shares, a resumable tiny run."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from softprompt.model.loading import load_frozen_t5
from softprompt.nano import mixture as nano_mixture
from softprompt.nano.optim import RMSScaledAdamW
from softprompt.nano.pretrain import PretrainConfig, learning_rate, pretrain, step_objective
from tests.softprompt.nano.helpers import TINY, cached_mixture


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


def test_pretrain_writes_loadable_model_and_resumes_exactly(tiny_corpus, tmp_path):
    full = pretrain(tiny_corpus, tmp_path / "full", PretrainConfig(**TINY), log_every=1, eval_every=3, eval_batches=1)
    assert full["step"] == 3 and math.isfinite(full["eval"]["span"]["swap_gap"])
    model_dir = tmp_path / "full" / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "state.json"):
        assert (model_dir / name).is_file()
    frozen = load_frozen_t5(str(model_dir))
    assert frozen.config.d_model == 16 and frozen.config.feed_forward_proj == "gated-gelu"
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3] and [r["phase"] for r in log if "phase" in r][
        -1
    ] == "lm"

    stopped = pretrain(
        tiny_corpus, tmp_path / "part", PretrainConfig(**TINY), minutes=1e-9
    )  # out of time after one step
    assert stopped["step"] == 1
    assert json.loads((tmp_path / "part" / "model" / "state.json").read_text())["step"] == 1
    resumed = pretrain(
        tiny_corpus, tmp_path / "part", PretrainConfig(**TINY), log_every=1, eval_every=3, eval_batches=1
    )
    assert resumed["step"] == 3 and resumed["input_tokens"] == full["input_tokens"]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(model_dir / name), load_file(tmp_path / "part" / "model" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_objective_shares_follow_the_config():
    cfg = PretrainConfig(**(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5}))
    drawn = [step_objective(cfg, step, 4000) for step in range(4000)]
    shares = {o: drawn.count(o) / len(drawn) for o in ("mixture", "lm", "span")}
    assert abs(shares["mixture"] - 0.5) < 0.03 and abs(shares["lm"] - 0.25) < 0.03 and abs(shares["span"] - 0.25) < 0.03
    plain = PretrainConfig(**(TINY | {"lm_fraction": 0.25}))  # no shares: the original phases, span then LM
    assert [step_objective(plain, s, 8) for s in range(8)] == ["span"] * 6 + ["lm"] * 2


def test_pretrain_with_mixture_from_a_model_resumes_exactly(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(cached_mixture(tmp_path / "cache")))
    pretrain(tiny_corpus, tmp_path / "base", PretrainConfig(**TINY))
    base = tmp_path / "base" / "model"
    cfg = PretrainConfig(
        **(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5, "steps": 4, "d_model": 8})
    )
    full = pretrain(tiny_corpus, tmp_path / "full", cfg, log_every=1, eval_every=4, eval_batches=1, init_from=base)
    assert full["config"]["d_model"] == 16  # the architecture comes from the starting model
    assert full["init_from"]["weights_sha256"] and {r["source"] for r in full["mixture"]} == {
        s.name for s in nano_mixture.SOURCES
    }
    assert math.isfinite(full["eval"]["mixture"]["loss"])
    phases = [json.loads(line).get("phase") for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert "mixture" in phases
    assert pretrain(tiny_corpus, tmp_path / "part", cfg, minutes=1e-9, init_from=base)["step"] == 1
    pretrain(
        tiny_corpus, tmp_path / "part", cfg, log_every=1, eval_every=4, eval_batches=1
    )  # resumed: no init_from needed
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(tmp_path / "full" / "model" / name), load_file(tmp_path / "part" / "model" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tweets = tmp_path / "cache" / "mixture" / "tweet-sentiment.jsonl"
    tweets.write_text(tweets.read_text().replace("number 1 ", "number one "))
    with pytest.raises(SystemExit, match="cached mixture rows differ"):
        pretrain(tiny_corpus, tmp_path / "full", cfg)


# ----------------------------------------------------------------------------- the lineage recipe (three sizes)


def test_pretrain_cli_rejects_an_unknown_mixture_task_in_one_line(tiny_corpus, tmp_path):
    from softprompt.nano.pretrain import main

    with pytest.raises(SystemExit, match="^error: unknown mixture source.*sst2"):
        main(
            [
                "--corpus",
                str(tiny_corpus),
                "--out",
                str(tmp_path / "run"),
                "--steps",
                "1",
                "--mixture-share",
                "0.5",
                "--mixture-tasks",
                "sst2",
                "--d-model",
                "16",
                "--d-ff",
                "32",
                "--d-kv",
                "8",
                "--num-heads",
                "2",
                "--num-layers",
                "1",
            ]
        )
