import numpy as np
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import choose_format, render
from birdie_ssm.text.tokenizer import ByteTokenizer
from tests.helpers import tiny_config

SPECIALS = ByteTokenizer().specials
NTP = "objectives.mixture=[{name: next_token}]"
MIXED = (
    "objectives.mixture=[{name: infilling}, {name: next_token}, {name: prefix_lm}, {name: copying}]"
)


def test_next_token_run_gets_a_causal_prompt():
    fmt = choose_format(tiny_config(NTP), SPECIALS, native="copying")
    assert (fmt.kind, fmt.paradigm, fmt.prefix_len) == ("causal", SPECIALS.paradigm(0), 2)
    ids = render(fmt, SPECIALS, np.array([7, 8, 9]))
    assert ids.tolist() == [SPECIALS.paradigm(0), SPECIALS.sep, 7, 8, 9]


def test_prefix_lm_run_reads_the_context_as_a_prefix():
    fmt = choose_format(tiny_config(MIXED), SPECIALS, native=None)
    assert (fmt.kind, fmt.objective, fmt.prefix_len) == ("prefix", "prefix_lm", None)
    assert fmt.paradigm == SPECIALS.paradigm(2)  # third class in order of first appearance
    ids = render(fmt, SPECIALS, np.array([7, 8]))
    assert ids.tolist() == [SPECIALS.paradigm(2), 7, 8, SPECIALS.sep]


def test_native_objective_wins_when_trained():
    fmt = choose_format(tiny_config(MIXED), SPECIALS, native="copying")
    assert (fmt.kind, fmt.paradigm) == ("native", SPECIALS.paradigm(3))
    forced = choose_format(tiny_config(MIXED), SPECIALS, native="copying", requested="causal")
    assert (forced.kind, forced.paradigm) == ("causal", SPECIALS.paradigm(1))


@pytest.mark.parametrize("requested", ["prefix", "native", "sideways"])
def test_untrained_format_is_a_clear_error(requested):
    with pytest.raises(BirdieError, match="format"):
        choose_format(tiny_config(NTP), SPECIALS, native="copying", requested=requested)


def test_run_without_text_objective_cannot_be_prompted_in_text():
    config = tiny_config("objectives.mixture=[{name: infilling}]")
    with pytest.raises(BirdieError, match="trained infilling"):
        choose_format(config, SPECIALS, native=None)
