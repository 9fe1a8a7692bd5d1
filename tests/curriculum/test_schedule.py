import pytest

from birdie_ssm.curriculum.schedule import eval_steps
from birdie_ssm.errors import BirdieError


def test_birdie_schedule_scaled_to_the_quickstart():
    assert eval_steps(600, "birdie", scale=0.2) == [2, 10, 50, 100, 200, 300, 400, 600]


def test_birdie_schedule_continues_every_thousand():
    assert eval_steps(4500) == [10, 50, 250, 500, 1000, 1500, 2000, 3000, 4000, 4500]


def test_every_n_schedule_ends_at_the_last_step():
    assert eval_steps(250, "every", every=100) == [100, 200, 250]


def test_bad_schedule_is_a_user_error():
    with pytest.raises(BirdieError, match="unknown eval schedule 'weekly'"):
        eval_steps(100, "weekly")
