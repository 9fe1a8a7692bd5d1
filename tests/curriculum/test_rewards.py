import numpy as np
import pytest

from birdie_ssm.curriculum.rewards import (
    birdie_reward,
    class_rewards,
    get_reward,
    relative_gain,
    total_reward,
)
from birdie_ssm.errors import BirdieError


def test_birdie_reward_is_about_scale_free():
    high, low = birdie_reward(np.array([4.5, 0.6]), np.array([4.2, 0.52]))
    assert 0.5 < high < 1.0 and 0.5 < low < 1.0
    assert abs(high - low) < 0.1


def test_birdie_reward_penalises_a_rise_and_ignores_nan():
    rewards = birdie_reward(np.array([4.2, 3.0, np.nan, 3.0]), np.array([4.3, 3.0, 2.0, np.nan]))
    assert rewards[0] < 0
    np.testing.assert_array_equal(rewards[1:], 0.0)


def test_birdie_reward_is_bounded():
    rewards = birdie_reward(np.array([5.0, 5.0]), np.array([0.5, 50.0]))
    np.testing.assert_array_equal(rewards, [1.0, -1.0])


def test_relative_gain():
    np.testing.assert_allclose(
        relative_gain(np.array([4.0, 2.0, np.nan]), np.array([3.0, 2.5, 1.0])), [0.25, -0.25, 0.0]
    )


def test_class_aggregation_means_within_classes_then_sums():
    rewards = np.array([1.0, 0.0, 0.5, -0.5])
    classes = ["ntp", "infill", "infill", "copy"]
    assert class_rewards(rewards, classes) == {"ntp": 1.0, "infill": 0.25, "copy": -0.5}
    assert total_reward(rewards, classes) == pytest.approx(0.75)


def test_rewards_are_selected_by_name():
    assert get_reward("birdie") is birdie_reward
    assert get_reward("relative") is relative_gain
    with pytest.raises(BirdieError, match="unknown reward 'gain'"):
        get_reward("gain")
