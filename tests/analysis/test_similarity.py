"""Task similarity and retrieval (SPoT): matrices against a hand-computed example, retrieval of a
planted prompt, and the `similarity` / `retrieve` / `train --init-from auto` commands end to end on
tiny random T5 runs (RTE rows from the small fixtures under tests/data)."""

import csv
import json
import math

import pytest
import torch

from analysis.similarity import (
    RunVectors,
    bank_vectors,
    block_means,
    load_run_vectors,
    prompt_similarity,
    rank_library,
    similarity_report,
)
from softprompt.errors import SoftpromptError
from softprompt.io.store import read_meta, save_run
from softprompt.model.loading import save_model_dir
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from tests.conftest import TEST_DATA
from tests.softprompt.cli.helpers import run_cli

RTE = TEST_DATA / "superglue" / "rte"
R = 1 / math.sqrt(2)

# three 2-D prompts of 2 tokens: A = {x, y}, B = {x, x}, C = {2y, -y}
A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
B = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
C = torch.tensor([[0.0, 2.0], [0.0, -1.0]])


def test_cosine_mean_and_max_by_hand():
    """Means: A (.5, .5), B (1, 0), C (0, .5). Max over token pairs: A·B has x·x = 1, A·C has y·2y = 1,
    B·C only x·(±y) = 0."""
    prompts = torch.stack([A, B, C])  # (3, 2, 2)
    mean = prompt_similarity(prompts, prompts, "cosine-mean")
    torch.testing.assert_close(mean, torch.tensor([[1, R, R], [R, 1, 0], [R, 0, 1]], dtype=torch.float64))
    top = prompt_similarity(prompts, prompts, "cosine-max")
    torch.testing.assert_close(top, torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=torch.float64))


def test_task_matrix_is_the_mean_over_prompt_pairs():
    runs = [
        RunVectors("r1", "r1", "boolq", "h", "prompts", torch.stack([A, B])),
        RunVectors("r2", "r2", "rte", "h", "prompts", C[None]),
    ]
    report = similarity_report(runs, "cosine-mean")
    assert report["prompt_names"] == ["r1#0", "r1#1", "r2#0"]
    expected = [[(1 + R + R + 1) / 4, (R + 0) / 2], [(R + 0) / 2, 1.0]]
    assert torch.allclose(
        torch.tensor(report["tasks"], dtype=torch.float64), torch.tensor(expected, dtype=torch.float64)
    )
    assert [r["task"] for r in report["runs"]] == ["boolq", "rte"]
    assert torch.equal(
        block_means(torch.arange(9.0).reshape(3, 3), [2, 1], [1, 2]), torch.tensor([[1.5, 3.0], [6.0, 7.5]])
    )


def test_prompts_of_different_lengths_compare():
    long = torch.cat([A, A])[None]  # (1, 4, 2): same mean as A
    assert prompt_similarity(A[None], long).item() == pytest.approx(1.0)


def test_similarity_refuses_mismatched_widths_and_unknown_metric():
    with pytest.raises(SoftpromptError, match="compare prompts of the same model and bank"):
        prompt_similarity(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(SoftpromptError, match="unknown similarity metric 'cosine'"):
        prompt_similarity(A[None], A[None], "cosine")


@pytest.mark.parametrize("metric", ["cosine-mean", "cosine-max"])
def test_retrieval_ranks_a_scaled_copy_of_the_target_first(metric):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 5, 16, generator=g)
    decoys = torch.randn(4, 5, 16, generator=g)
    near = target + 0.8 * torch.randn(1, 5, 16, generator=g)  # similar, not a copy
    library = [
        RunVectors("a", "a", "boolq", "h", "prompts", torch.cat([decoys[:2], near])),
        RunVectors("b", "b", "cb", "h", "prompts", torch.cat([decoys[2:], 3.7 * target])),  # planted at index 2
    ]
    ranking = rank_library(RunVectors("t", "t", "sst2", "h", "prompts", target), 0, library, metric)
    assert (ranking[0]["name"], ranking[0]["task"], ranking[0]["rank"]) == ("b#2", "cb", 1)
    assert ranking[0]["score"] == pytest.approx(1.0)
    assert ranking[1]["name"] == "a#2"  # the noisy copy comes next
    assert [r["score"] for r in ranking] == sorted((r["score"] for r in ranking), reverse=True) and len(ranking) == 6


def test_retrieval_refuses_another_model():
    one = RunVectors("a", "a", "boolq", "h1", "prompts", A[None])
    with pytest.raises(SoftpromptError, match="were trained on different models"):
        rank_library(one, 0, [RunVectors("b", "b", "rte", "h2", "prompts", A[None])])


def test_prefix_vectors_concatenate_sites_per_position():
    kv = {"encoder": torch.randn(2, 3, 2, 4, 5, 8), "cross": torch.randn(2, 1, 2, 4, 5, 8)}  # (N, L, 2, H, Pp, d_kv)
    vectors = bank_vectors(None, kv, "prefixes")
    assert vectors.shape == (2, 5, 3 * 2 * 4 * 8 + 1 * 2 * 4 * 8)
    assert torch.equal(vectors[1, 4, :8], kv["encoder"][1, 0, 0, 0, 4])  # layer 0, keys, head 0, position 4
    assert bank_vectors(torch.zeros(1, 2, 3), None, "prefixes") is None


# ----------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny RTE runs (input prompts of 3 tokens + encoder prefixes), and a planted library run
    whose only prompt is 2.5 × prompt 1 of run ``a``."""
    root = tmp_path_factory.mktemp("library")
    model = root / "tiny"
    save_model_dir(random_t5(), model)
    common = [
        "--model",
        model,
        "--task",
        "rte",
        "--train-file",
        RTE / "train.jsonl",
        "--validation-file",
        RTE / "val.jsonl",
        "--train-size",
        "8",
        "--eval-size",
        "4",
        "--prompt-length",
        "3",
        "--deep-prefix",
        "--prefix-length",
        "2",
        "--prefix-sites",
        "encoder",
        "--reparam-dim",
        "0",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--max-source-length",
        "64",
        "--quiet",
    ]
    out = {"model": model}
    for name, n, seed in (("a", 2, 0), ("b", 1, 5), ("c", 2, 9)):
        result = run_cli("train", *common, "--n-prompts", n, "--seed", seed, "--output-dir", root / name)
        assert result.exit_code == 0, result.stderr
        out[name] = root / name
    meta = read_meta(out["a"])
    bank = PromptBank(1, 3, 32)
    bank.weight.data.copy_(2.5 * load_run_vectors([str(out["a"])])[0].vectors[1:2])
    save_run(
        root / "planted",
        {k: v for k, v in meta.items() if k not in ("files", "prefixes")} | {"n_prompts": 1, "seeds": [0]},
        bank,
        None,
    )
    out["planted"] = root / "planted"
    out["common"] = common
    return out


def test_similarity_command_prints_writes_and_plots(runs, tmp_path):
    result = run_cli(
        "similarity",
        runs["a"],
        runs["b"],
        runs["c"],
        "--output",
        tmp_path / "out" / "sim.json",
        "--plot",
        tmp_path / "out" / "sim.png",
    )
    assert result.exit_code == 0, result.stderr
    assert "task similarity (cosine-mean of prompts" in result.stdout and "prompt similarity:" in result.stdout
    report = json.loads((tmp_path / "out" / "sim.json").read_text())
    vectors = [load_run_vectors([str(runs[k])])[0].vectors for k in "abc"]
    expected = prompt_similarity(torch.cat(vectors), torch.cat(vectors))  # one 5 × 5 matrix, same prompt length
    assert torch.allclose(torch.tensor(report["prompts"], dtype=torch.float64), expected, atol=1e-6)
    assert report["prompt_names"] == ["a#0", "a#1", "b#0", "c#0", "c#1"]
    assert report["tasks"][0][2] == pytest.approx(expected[:2, 3:].mean().item(), abs=1e-6)
    with open(tmp_path / "out" / "sim.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert (
        len(rows) == 9 + 25
        and {"level": "task", "row": "b", "column": "c", "similarity": f"{report['tasks'][1][2]:.6f}"} in rows
    )
    for name in ("sim.png", "sim.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    prefixes = run_cli("similarity", runs["a"], runs["c"], "--bank", "prefixes", "--metric", "cosine-max")
    assert prefixes.exit_code == 0 and "cosine-max of prefixes" in prefixes.stdout


def test_retrieve_command_ranks_the_planted_copy_first(runs):
    result = run_cli(
        "retrieve",
        "--target",
        f"{runs['a']}#1",
        "--library",
        runs["b"],
        "--library",
        runs["planted"],
        "--library",
        runs["c"],
        "--top",
        "2",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    ranking = json.loads(result.stdout)
    assert len(ranking) == 2 and ranking[0]["name"] == "planted#0" and ranking[0]["score"] == pytest.approx(1.0)
    table = run_cli("retrieve", "--target", f"{runs['a']}#1", "--library", runs["planted"], "--library", runs["c"])
    assert table.stdout.splitlines()[1].split()[:3] == ["1", "1.0000", "planted#0"]


def test_train_init_from_auto_starts_from_the_closest_library_prompt(runs, tmp_path):
    """The probe (1 prompt, the run's settings and first seed, --probe-steps steps) equals library run
    ``b`` trained for the same steps with the same seed, so the retrieval must pick b#0 (score 1)."""
    out = tmp_path / "auto"
    result = run_cli(
        "train",
        *runs["common"],
        "--n-prompts",
        "2",
        "--seed",
        "5",
        "--init-from",
        "auto",
        "--library",
        runs["a"],
        "--library",
        runs["b"],
        "--library",
        runs["c"],
        "--probe-steps",
        "2",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    meta = read_meta(out)
    auto = meta["init_from"]["auto"]
    assert auto["picked"][0] == "b#0" and auto["ranking"][0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert [r["rank"] for r in auto["ranking"]] == [1, 2, 3, 4, 5] and auto["probe"]["steps"] == 2
    assert [(s["run"], s["source_prompt"]) for s in meta["init_from"]["sources"]] == [
        (r["run"], r["index"]) for r in auto["ranking"][:2]
    ]
    assert "--init-from auto: " in result.stderr
