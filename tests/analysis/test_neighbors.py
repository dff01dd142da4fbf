"""Tests for analysis.neighbors: nearest vocabulary tokens of prompt vectors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer

from analysis.neighbors import (
    format_neighbor_table,
    nearest_neighbors,
    neighbor_report,
    plot_neighbors,
    special_token_ids,
)
from softprompt.errors import SoftpromptError
from tests.conftest import ROOT

V, D = 200, 16


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(ROOT / "softprompt" / "assets" / "t5-tokenizer"))


@pytest.fixture
def embeddings() -> torch.Tensor:
    return torch.randn(V, D, generator=torch.Generator().manual_seed(0))  # (V, d)


def test_planted_vectors_come_back_at_top1(embeddings):
    planted = torch.tensor([[5, 17, 42], [199, 0, 123]])  # (N, P)
    vectors = embeddings[planted] * 3.0  # (N, P, d); cosine ignores the scale
    noise = 1e-3 * torch.randn(vectors.shape, generator=torch.Generator().manual_seed(1))
    for vecs in (vectors, vectors + noise):
        sims, ids = nearest_neighbors(vecs, embeddings, top_k=4)
        assert sims.shape == ids.shape == (2, 3, 4)
        assert torch.equal(ids[..., 0], planted)
        assert torch.allclose(sims[..., 0], torch.ones(2, 3), atol=1e-4)
        assert (sims[..., :-1] >= sims[..., 1:]).all()  # descending


def test_matches_brute_force_cosine(embeddings):
    vectors = torch.randn(2, 4, D, generator=torch.Generator().manual_seed(2)).double()
    sims, ids = nearest_neighbors(vectors, embeddings.double(), top_k=3)
    assert sims.dtype == torch.float32
    full = torch.nn.functional.cosine_similarity(vectors.reshape(8, 1, D), embeddings.double()[None], dim=-1)  # (8, V)
    expected_sims, expected_ids = full.topk(3, dim=1)
    assert torch.equal(ids.reshape(8, 3), expected_ids)
    assert torch.allclose(sims.reshape(8, 3).double(), expected_sims, atol=1e-5)


def test_excluded_ids_never_returned(embeddings):
    excluded = list(range(0, V, 2)) + [V + 50]  # ids beyond the matrix are ignored
    vectors = embeddings[torch.arange(0, 40, 2)].reshape(2, 10, D)  # planted on excluded tokens
    _, ids = nearest_neighbors(vectors, embeddings, top_k=5, exclude_ids=excluded)
    assert not set(ids.flatten().tolist()) & set(excluded)


def test_zero_vector_gives_no_nan(embeddings):
    vectors = torch.zeros(1, 2, D)
    embeddings = embeddings.clone()
    embeddings[3] = 0.0  # a zero embedding row as well
    sims, ids = nearest_neighbors(vectors, embeddings, top_k=3)
    assert not torch.isnan(sims).any()
    assert torch.equal(sims, torch.zeros(1, 2, 3))
    assert ids.min() >= 0 and ids.max() < V


def test_bad_inputs_raise(embeddings):
    with pytest.raises(SoftpromptError, match="shape"):
        nearest_neighbors(torch.randn(3, D), embeddings)
    with pytest.raises(SoftpromptError, match="embeddings"):
        nearest_neighbors(torch.randn(1, 3, D + 1), embeddings)
    with pytest.raises(SoftpromptError, match="top_k"):
        nearest_neighbors(torch.randn(1, 3, D), embeddings, top_k=V - 9, exclude_ids=range(10))


def test_special_token_ids(tokenizer):
    ids = special_token_ids(tokenizer)
    assert {0, 1, 2} <= set(ids)  # pad, eos, unk
    assert {32000, 32099} <= set(ids)  # <extra_id_99>, <extra_id_0>
    assert {32100, 32127} <= set(ids) and 32128 not in ids  # unused padding rows of a 32128-row matrix
    assert 1176 not in ids  # '▁true' is a real token
    assert max(special_token_ids(tokenizer, num_rows=32200)) == 32199


def _hand_made() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor(
        [
            [[10, 11], [10, 12]],  # prompt 0: set {10, 11, 12}
            [[10, 13], [14, 11]],  # prompt 1: set {10, 11, 13, 14}
        ]
    )  # (N=2, P=2, k=2)
    sims = torch.tensor([[[0.9, 0.5], [0.8, 0.4]], [[0.7, 0.3], [0.6, 0.2]]])
    return sims, ids


def test_report_statistics(tokenizer):
    sims, ids = _hand_made()
    report = neighbor_report(sims, ids, tokenizer, label_token_ids=[12, 14, 99])
    json.dumps(report)  # serialisable
    s = report["summary"]
    assert s["label_positions"] == 2 and s["n_positions"] == 4 and s["label_fraction"] == 0.5
    assert s["distinct_tokens"] == 5
    assert s["most_common"][0] == {"token": tokenizer.convert_ids_to_tokens(10), "id": 10, "count": 3}
    assert s["most_common"][1]["id"] == 11 and s["most_common"][1]["count"] == 2
    assert len(s["most_common"]) == 5
    assert math.isclose(s["mean_top1_similarity"], (0.9 + 0.8 + 0.7 + 0.6) / 4, rel_tol=1e-6)
    # |{10,11,12} ∩ {10,11,13,14}| / |∪| = 2 / 5
    assert s["overlap"]["jaccard"] == [[1.0, 0.4], [0.4, 1.0]]
    assert math.isclose(s["overlap"]["mean_off_diagonal"], 0.4)
    first = report["prompts"][0]["positions"][1]["neighbors"]
    assert [n["id"] for n in first] == [10, 12]
    assert first[0]["token"] == tokenizer.convert_ids_to_tokens(10)
    assert math.isclose(first[0]["similarity"], 0.8, rel_tol=1e-6)


def test_report_subset_and_no_labels(tokenizer):
    sims, ids = _hand_made()
    report = neighbor_report(sims, ids, tokenizer, prompt_indices=[1])
    s = report["summary"]
    assert [p["prompt"] for p in report["prompts"]] == [1]
    assert s["label_positions"] is None and s["overlap"] is None
    assert s["distinct_tokens"] == 4
    with pytest.raises(SoftpromptError, match="prompt_indices"):
        neighbor_report(sims, ids, tokenizer, prompt_indices=[2])


def test_table_contains_tokens(tokenizer):
    true_id, false_id = tokenizer.convert_tokens_to_ids(["▁true", "▁false"])
    ids = torch.tensor([[[true_id, false_id], [false_id, 10]]])  # (1, 2, 2)
    sims = torch.tensor([[[0.91, 0.55], [0.8, 0.1]]])
    table = format_neighbor_table(neighbor_report(sims, ids, tokenizer, label_token_ids=[true_id, false_id]))
    assert "p0 pos 0 | ▁true 0.91 | ▁false 0.55" in table
    assert "p0 pos 1 | ▁false 0.80 |" in table
    assert "2/2 (100.0%)" in table and "▁false ×2" in table


def test_plot_written(tmp_path, tokenizer, embeddings):
    vectors = torch.randn(3, 8, D, generator=torch.Generator().manual_seed(3))
    _, ids = nearest_neighbors(vectors, embeddings, top_k=3)
    plot_neighbors(vectors, embeddings, ids, tokenizer, str(tmp_path / "nn.png"), max_labels=10)
    assert (tmp_path / "nn.png").stat().st_size > 0
    plot_neighbors(vectors, embeddings, ids, tokenizer, str(tmp_path / "nn.svg"))
    assert (tmp_path / "nn.svg").stat().st_size > 0 and (tmp_path / "nn.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nn.png", "nn.svg"]  # no temp files left
    with pytest.raises(SoftpromptError, match="png or .svg"):
        plot_neighbors(vectors, embeddings, ids, tokenizer, str(tmp_path / "nn.pdf"))


@pytest.mark.parametrize("chunk", [1, 7, 64, V, 10 * V])
def test_chunked_search_gives_scikit_learns_brute_force_neighbours(chunk):
    """The vocabulary searched in chunks of rows (a running top-k merged with each chunk's) gives exactly the
    neighbours of scikit-learn's brute-force cosine search, excluded ids skipped, for any chunk size."""
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(3)
    vectors, table = torch.randn(3, 5, D, generator=g), torch.randn(V, D, generator=g)
    excluded = [0, 1, 2, 63, 64, 199]
    sims, ids = nearest_neighbors(vectors, table, top_k=6, exclude_ids=excluded, chunk=chunk)
    distances, theirs = (
        NearestNeighbors(metric="cosine", algorithm="brute")
        .fit(table.numpy())
        .kneighbors(vectors.reshape(15, D).numpy(), 6 + len(excluded))
    )
    kept = [[(t, 1 - d) for t, d in zip(row, dist) if t not in excluded][:6] for row, dist in zip(theirs, distances)]
    assert ids.reshape(15, 6).tolist() == [[t for t, _ in row] for row in kept]
    assert torch.allclose(sims.reshape(15, 6), torch.tensor([[s for _, s in row] for row in kept]), atol=1e-5)
    with pytest.raises(SoftpromptError, match="chunk must be a positive number"):
        nearest_neighbors(vectors, table, chunk=0)


def test_byte_vocabulary_is_read_as_bytes():
    """ByT5's ids name bytes: printable ASCII shows as itself, every other byte as <0xNN>, sentinels and special
    tokens by name; the report says how tokens are shown."""
    from transformers import ByT5Tokenizer

    byt5 = ByT5Tokenizer()
    table = torch.randn(384, D, generator=torch.Generator().manual_seed(4))
    ids = byt5("é a!", add_special_tokens=False).input_ids  # 0xC3 0xA9, space, 'a', '!'
    sims, found = nearest_neighbors(table[ids][None], table, top_k=1)
    report = neighbor_report(sims, found, byt5)
    assert [pos["neighbors"][0]["token"] for pos in report["prompts"][0]["positions"]] == [
        "<0xC3>",
        "<0xA9>",
        "<0x20>",
        "a",
        "!",
    ]
    assert report["token_display"].startswith("bytes (ByT5)")
    assert special_token_ids(byt5) == [0, 1, 2, *range(259, 384)]  # pad, eos, unk and the 125 sentinels
