"""Per-input answers (``ensembles.answers``), the shape ``serve`` and ``predict`` return, on hand-made
log-likelihoods where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles.answers import classification_answers, generation_answers


def test_classification_answers_vote_pad_and_single_prompt():
    """Majority of 3 prompts per input; an input with fewer candidates (-inf pad) keeps only its own;
    mean probabilities sum to 1; without a vote the first prompt answers alone, with its scores."""
    log_probs = np.log(
        np.array(
            [[[0.9, 0.1, 1.0], [0.2, 0.3, 0.5]], [[0.4, 0.6, 1.0], [0.1, 0.1, 0.8]], [[0.7, 0.3, 1.0], [0.6, 0.3, 0.1]]]
        )
    )  # (N=3, M=2, K=3); input 0 has 2 candidates
    log_probs[:, 0, 2] = -np.inf  # its padding
    choices = [("no", "yes"), ("a", "b", "c")]
    voted = classification_answers(["p0", "p1", "p2"], choices, log_probs, "majority")
    assert [a["label"] for a in voted] == ["no", "c"]
    assert voted[0]["candidates"] == ["no", "yes"] and len(voted[0]["probs"]) == 2
    assert voted[0]["probs"] == pytest.approx([(0.9 + 0.4 + 0.7) / 3, (0.1 + 0.6 + 0.3) / 3])
    assert [v["label"] for v in voted[0]["votes"]] == ["no", "yes", "no"]
    assert [v["prompt"] for v in voted[1]["votes"]] == ["p0", "p1", "p2"]
    alone = classification_answers(["p0"], choices, log_probs[:1], None)
    assert [a["label"] for a in alone] == ["no", "c"] and "votes" not in alone[0]
    assert alone[1]["scores"] == pytest.approx(np.log([0.2, 0.3, 0.5]).tolist())


def test_generation_answers_vote_and_single_prompt():
    outputs = [["a cat", "red"], ["a cat", "blue"], ["a dog", "blue"]]  # N=3 prompts × M=2 inputs
    scores = np.array([[-1.0, -0.5], [-2.0, -0.4], [-0.1, -3.0]])
    voted = generation_answers(["p0", "p1", "p2"], outputs, scores, "majority")
    assert [a["text"] for a in voted] == ["a cat", "blue"]
    assert [a["score"] for a in voted] == pytest.approx([-1.5, -1.7])  # the mean score of the prompts that generated it
    assert [(v["prompt"], v["text"], v["score"]) for v in voted[1]["votes"]] == [
        ("p0", "red", -0.5),
        ("p1", "blue", -0.4),
        ("p2", "blue", -3.0),
    ]
    assert generation_answers(["p0"], outputs[:1], scores[:1], None) == [
        {"text": "a cat", "score": -1.0},
        {"text": "red", "score": -0.5},
    ]
