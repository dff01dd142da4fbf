"""The decoding settings' defaults and checks (no model needed)."""

import pytest

from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS, check_decoding, complete_decoding


def test_complete_decoding_fills_only_what_is_left_out():
    assert complete_decoding({}) == DECODING_DEFAULTS
    assert complete_decoding({"max_new_tokens": 8, "no_repeat_ngram_size": 3}) == {
        "max_new_tokens": 8,
        "num_beams": 1,
        "no_repeat_ngram_size": 3,
    }


@pytest.mark.parametrize(
    "decoding, message",
    [
        ({"max_new_tokens": 0}, r"^--max-new-tokens must be a positive integer, got 0$"),
        ({"num_beams": -2}, r"^--num-beams must be a positive integer, got -2$"),
        ({"no_repeat_ngram_size": -1}, r"^--no-repeat-ngram-size must be >= 0 \(0: off\), got -1$"),
    ],
)
def test_check_decoding_names_the_flag_and_the_bad_value(decoding, message):
    check_decoding(complete_decoding({}))  # the defaults pass
    with pytest.raises(SoftpromptError, match=message):
        check_decoding(decoding)
