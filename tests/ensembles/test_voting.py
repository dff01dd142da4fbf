"""Voting rules on hand-made tables, ties included."""

import numpy as np
import pytest

from ensembles.voting import (
    CLASSIFICATION_RULES,
    GENERATION_RULES,
    best_score_select,
    candidate_probs,
    confidence_vote,
    logprob_sum_vote,
    majority_vote,
    mbr_select,
    normalize_text,
    parse_rules,
    string_vote,
)
from softprompt.errors import SoftpromptError

NEG_INF = -np.inf


def table(*prompts):
    """Stack per-prompt (M, K) probability tables into log_probs (N, M, K)."""
    with np.errstate(divide="ignore"):
        return np.log(np.array(prompts, dtype=np.float64))


def test_candidate_probs_softmax_over_candidates_and_pads_are_zero():
    log_probs = np.array([[[np.log(2.0), 0.0, NEG_INF]]])  # (1, 1, 3): unnormalised 2:1, one pad
    np.testing.assert_allclose(candidate_probs(log_probs), [[[2 / 3, 1 / 3, 0.0]]])


def test_majority_clear_winner():
    log_probs = table(
        [[0.6, 0.4], [0.1, 0.9]],
        [[0.7, 0.3], [0.4, 0.6]],
        [[0.2, 0.8], [0.3, 0.7]],
    )  # (3, 2, 2): example 0 votes 0,0,1; example 1 votes 1,1,1
    assert majority_vote(log_probs).tolist() == [0, 1]


def test_majority_tie_broken_by_mean_probability():
    # One vote each; mean probs: label 0 = (0.6 + 0.1) / 2 = 0.35, label 1 = 0.65.
    log_probs = table([[0.6, 0.4]], [[0.1, 0.9]])
    assert majority_vote(log_probs).tolist() == [1]
    # Same votes, but prompt 0 is very sure of label 0: mean label 0 = (0.99 + 0.45) / 2 = 0.72.
    log_probs = table([[0.99, 0.01]], [[0.45, 0.55]])
    assert majority_vote(log_probs).tolist() == [0]


def test_majority_exact_tie_goes_to_lowest_index_among_tied_labels():
    # Symmetric logits: labels 1 and 2 get one vote each and equal mean probability.
    # Label 0 has the highest mean probability but no vote, so it cannot win.
    log_probs = np.array([[[1.0, 1.1, -5.0]], [[1.0, -5.0, 1.1]]])  # (2, 1, 3)
    mean = candidate_probs(log_probs).mean(axis=0)[0]
    assert mean[0] > mean[1] and mean[1] == pytest.approx(mean[2], abs=1e-15)  # equal up to rounding
    assert majority_vote(log_probs).tolist() == [1]
    # Mirror image: the lowest tied index is still 1.
    assert majority_vote(log_probs[::-1]).tolist() == [1]


def test_confidence_and_logprob_sum_disagree_on_crafted_case():
    # Prompt 0 is near-certain of label 1; prompts 1 and 2 mildly prefer label 0.
    # mean probs: [0.601, 0.399] -> 0; log sums: [-7.12, -4.61] -> 1.
    log_probs = table([[0.001, 0.999]], [[0.9, 0.1]], [[0.9, 0.1]])
    assert confidence_vote(log_probs).tolist() == [0]
    assert logprob_sum_vote(log_probs).tolist() == [1]
    assert majority_vote(log_probs).tolist() == [0]


def test_logprob_sum_ignores_per_prompt_normalisation():
    log_probs = table([[0.2, 0.5]], [[0.3, 0.1]])  # unnormalised likelihoods: products 0.06 vs 0.05
    assert logprob_sum_vote(log_probs).tolist() == [0]
    assert logprob_sum_vote(log_probs + np.array([[[3.0]], [[-7.0]]])).tolist() == [0]


def test_padded_candidates_never_win():
    # Example 0 has 2 candidates (third padded), example 1 has 3. Log-likelihoods are very
    # negative so a zero-filled pad would win; -inf pads must not.
    log_probs = np.array(
        [
            [[-50.0, -60.0, NEG_INF], [-9.0, -8.0, -7.0]],
            [[-70.0, -40.0, NEG_INF], [-9.0, -8.0, -7.0]],
        ]
    )  # (2, 2, 3)
    for rule in CLASSIFICATION_RULES.values():
        pred = rule(log_probs)
        assert pred[0] in (0, 1) and pred[1] == 2
    assert logprob_sum_vote(log_probs).tolist() == [1, 2]  # -110 vs -100


def test_argmax_ties_go_to_lowest_index():
    log_probs = np.zeros((2, 1, 3))  # every candidate equally likely for every prompt
    for rule in CLASSIFICATION_RULES.values():
        assert rule(log_probs).tolist() == [0]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 3)), np.full((1, 1, 2), np.nan), np.full((1, 1, 2), np.inf), np.full((1, 1, 2), NEG_INF)],
)
def test_invalid_log_probs_raise(bad):
    with pytest.raises(SoftpromptError):
        majority_vote(bad)


def test_normalize_text():
    assert normalize_text("  The  Cat\tsat. ") == "the cat sat"
    assert normalize_text('"U.S. Army!"') == "u.s. army"
    assert normalize_text("...") == ""


def test_string_vote_majority_returns_original_string():
    outputs = [["paris", "Blue"], [" Paris.", "red"], ["London", "red "]]  # outputs[n][m]
    assert string_vote(outputs) == ["paris", "red"]


def test_string_vote_tie_goes_to_group_with_lowest_first_prompt():
    # Groups {london: n=1,3} and {paris: n=2,4}, tied at 2 votes; london appears first (n=1).
    outputs = [["rome"], ["London"], ["paris"], ["london!"], ["Paris"]]
    assert string_vote(outputs) == ["London"]
    # All different: the first prompt wins.
    assert string_vote([["a"], ["b"], ["c"]]) == ["a"]


def test_mbr_selects_the_output_closest_to_the_others():
    outputs = [
        ["the quick brown fox jumps"],
        ["completely unrelated words here"],
        ["the quick brown fox jumps"],
    ]
    assert mbr_select(outputs) == ["the quick brown fox jumps"]  # 0 and 2 agree
    assert mbr_select(outputs, similarity="bleu") == ["the quick brown fox jumps"]
    agreeing = [["zzz yyy"], ["the cat sat on the mat"], ["the cat sat on the mat"]]
    assert mbr_select(agreeing) == ["the cat sat on the mat"]


def test_mbr_matches_a_hand_computed_utility_table():
    from sacrebleu.metrics import CHRF

    column = ["a cat on a mat", "the cat sat on the mat", "the cat is on the mat"]
    chrf = CHRF()
    utility = [
        np.mean([chrf.sentence_score(column[i], [column[j]]).score for j in range(3) if j != i]) for i in range(3)
    ]
    expected = column[int(np.argmax(utility))]
    assert mbr_select([[text] for text in column]) == [expected]


def test_mbr_identical_outputs_tie_to_first_and_single_prompt():
    assert mbr_select([["same"], ["same"]]) == ["same"]
    assert mbr_select([["only", "one"]]) == ["only", "one"]
    with pytest.raises(SoftpromptError, match="chrf, bleu"):
        mbr_select([["a"]], similarity="meteor")


def test_best_score_select_with_ties():
    outputs = [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    scores = np.array([[-1.0, -0.5, -0.3], [-0.2, -0.5, NEG_INF]])  # (2, 3); example 1 tied
    assert best_score_select(outputs, scores) == ["b0", "a1", "a2"]
    with pytest.raises(SoftpromptError):
        best_score_select(outputs, scores[:, :2])


def test_ragged_outputs_raise():
    with pytest.raises(SoftpromptError, match="one output per example"):
        string_vote([["a", "b"], ["c"]])


def test_generation_rules_share_one_signature():
    outputs = [["x y"], ["x y z"], ["x y"]]
    scores = np.array([[0.0], [1.0], [0.0]])
    assert GENERATION_RULES["majority"](outputs, scores) == ["x y"]
    assert GENERATION_RULES["best_score"](outputs, scores) == ["x y z"]
    assert GENERATION_RULES["mbr"](outputs, scores) in (["x y"], ["x y z"])


def test_parse_rules():
    assert parse_rules("majority, confidence,majority", "classification") == ["majority", "confidence"]
    assert parse_rules(["mbr", "best_score"], "generation") == ["mbr", "best_score"]
    with pytest.raises(SoftpromptError, match="majority, confidence, logprob_sum"):
        parse_rules("majority,mbr", "classification")
    with pytest.raises(SoftpromptError, match="majority, mbr, best_score"):
        parse_rules("confidence", "generation")
    with pytest.raises(SoftpromptError):
        parse_rules("majority", "regression")
