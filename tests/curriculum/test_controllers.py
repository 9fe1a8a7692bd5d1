import json

import numpy as np
import pytest

from birdie_ssm.curriculum import Controller, controller_names, make_controller
from birdie_ssm.errors import BirdieError
from tests.curriculum.common import ARMS, CLASSES, TINY_BIRDIE

PARAMS = {
    "birdie": {**TINY_BIRDIE, "warmup_steps": 20},
    "exp3s": {},
    "ucb": {},
    "thompson": {"samples": 32},
    "fixed": {},
}


def _losses(t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + t)
    return 4.0 * np.exp(-0.05 * t * np.linspace(0.5, 1.5, len(ARMS))) + 0.01 * rng.random(len(ARMS))


def _run(controller: Controller, start: int, stop: int) -> list[np.ndarray]:
    return [controller.update(10 * t, _losses(t)) for t in range(start, stop)]


def test_all_builtins_are_registered():
    assert set(PARAMS) <= set(controller_names())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_controller_returns_probability_vectors(name):
    controller = make_controller(name, ARMS, CLASSES, reward="birdie", **PARAMS[name])
    assert isinstance(controller, Controller)
    mixtures = [controller.initial_mixture(), *_run(controller, 0, 6)]
    with_nan = _losses(6)
    with_nan[1] = np.nan
    mixtures.append(controller.update(60, with_nan))
    for mixture in mixtures:
        assert mixture.shape == (len(ARMS),)
        assert np.all(mixture >= 0) and mixture.sum() == pytest.approx(1.0)
    json.dumps(controller.info)
    assert set(controller.info["class_rewards"]) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_state_dict_round_trip_reproduces_the_next_update(name):
    reference = make_controller(name, ARMS, CLASSES, **PARAMS[name])
    _run(reference, 0, 4)
    state = json.loads(json.dumps(reference.state_dict()))
    expected = _run(reference, 4, 7)

    resumed = make_controller(name, ARMS, CLASSES, **PARAMS[name])
    resumed.load_state_dict(state)
    for want, got in zip(expected, _run(resumed, 4, 7), strict=True):
        np.testing.assert_array_equal(got, want)


def test_fixed_keeps_given_weights():
    controller = make_controller("fixed", ["a", "b"], ["a", "b"], weights=[3, 1])
    np.testing.assert_allclose(controller.update(5, np.array([2.0, 2.0])), [0.75, 0.25])


def test_unknown_controller_or_parameter_is_a_user_error():
    with pytest.raises(BirdieError, match="unknown controller 'greedy'"):
        make_controller("greedy", ARMS, CLASSES)
    with pytest.raises(BirdieError, match="controller 'exp3s' has no parameter 'temperature'"):
        make_controller("exp3s", ARMS, CLASSES, temperature=1.0)
    with pytest.raises(BirdieError, match="epsilon"):
        make_controller("ucb", ARMS, CLASSES, epsilon=2.0)
    with pytest.raises(BirdieError, match="unknown reward"):
        make_controller("thompson", ARMS, CLASSES, reward="accuracy")


def test_wrong_number_of_losses_is_a_user_error():
    controller = make_controller("exp3s", ARMS, CLASSES)
    with pytest.raises(BirdieError, match="3 validation losses for 5 arms"):
        controller.update(1, np.ones(3))


def test_exp3s_moves_toward_the_arm_that_improves():
    controller = make_controller("exp3s", ["a", "b", "c"], ["a", "b", "c"])
    losses = np.array([4.0, 4.0, 4.0])
    for t in range(1, 15):
        losses = losses * np.array([0.9, 0.99, 1.0])
        mixture = controller.update(t, losses)
    assert mixture.argmax() == 0 and mixture[0] > 0.5


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_rewards_are_credited_to_the_played_mixture_when_given(name):
    # The pipeline may realise another mixture than the one asked for: what was really trained
    # (``played``) is what a controller learns from.
    played = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    asked = make_controller(name, ARMS, CLASSES, **PARAMS[name])
    told = make_controller(name, ARMS, CLASSES, **PARAMS[name])
    for t in range(4):
        asked.update(10 * t, _losses(t))
        told.update(10 * t, _losses(t), played=played)
    if name == "birdie":
        np.testing.assert_allclose(told.actions_seen[-1], played)
        assert not np.allclose(asked.actions_seen[-1], played)
    if name in ("ucb", "thompson"):  # evidence grows with the share played
        assert told.counts[0] > told.counts[1]
        assert not np.allclose(told.counts, asked.counts)
    with pytest.raises(BirdieError, match="played mixture"):
        told.update(50, _losses(5), played=np.array([1.0, -1.0, 0.0, 0.0, 1.0]))
