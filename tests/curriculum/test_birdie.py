import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.curriculum import make_controller
from birdie_ssm.curriculum.reward_model import RewardModel, fit, predict
from tests.curriculum.common import ARMS, CLASSES, TINY_BIRDIE

N, WINDOW, HIDDEN, ROWS = len(ARMS), TINY_BIRDIE["window"], TINY_BIRDIE["hidden"], 16
FEATURES = 3 * N + 1
CANDIDATES = TINY_BIRDIE["candidates"]


def _model():
    return nnx.split(RewardModel(N, WINDOW, FEATURES, HIDDEN, seed=0))


def test_predictions_depend_on_the_candidate_even_with_an_all_padding_history():
    graph, params = _model()
    pool = np.random.default_rng(0).dirichlet(np.ones(N), CANDIDATES)
    rewards = np.asarray(predict(graph, params, jnp.zeros((WINDOW, FEATURES)), jnp.asarray(pool)))
    assert rewards.shape == (CANDIDATES, N)
    assert np.all(rewards.std(axis=0) > 1e-4)
    assert np.all(np.abs(rewards).max(axis=0) > 1e-4)


def test_reward_model_learns_which_arm_pays():
    # One history; per-arm reward is the arm's share for arm 0, else 0: arm 0 should win.
    rng = np.random.default_rng(1)
    history = np.broadcast_to(rng.normal(size=(WINDOW, FEATURES)), (ROWS, WINDOW, FEATURES))
    actions = rng.dirichlet(np.ones(N), ROWS).astype(np.float32)
    target = np.zeros((ROWS, N), np.float32)
    target[:, 0] = actions[:, 0]
    batch = {
        "history": jnp.asarray(history, jnp.float32),
        "action": jnp.asarray(actions),
        "target": jnp.asarray(target),
        "weight": jnp.ones(ROWS),
    }
    graph, params = _model()
    params, loss = fit(graph, params, batch, 300, 1e-2)
    assert float(loss) < 1e-3
    pool = np.random.default_rng(2).dirichlet(np.ones(N), CANDIDATES)
    scores = np.asarray(predict(graph, params, batch["history"][0], jnp.asarray(pool))).sum(axis=1)
    assert pool[scores.argmax()].argmax() == 0


def test_controller_scores_candidates_differently():
    controller = make_controller("birdie", ARMS, CLASSES, **TINY_BIRDIE, warmup_steps=0)
    losses = np.full(N, 4.0)
    for t in range(4):
        losses = losses * np.linspace(0.95, 1.0, N)
        controller.update(t, losses)
    context = jnp.asarray(controller._context(len(controller.losses_seen) - 1))
    pool = jnp.asarray(controller._candidates(), jnp.float32)
    scores = np.asarray(predict(controller.graph, controller.params, context, pool)).sum(axis=1)
    assert scores.std() > 1e-4
    assert controller.info["explore"] < 0.5


def test_warm_up_is_uniform():
    controller = make_controller("birdie", ARMS, CLASSES, **TINY_BIRDIE, warmup_steps=100)
    for step in (10, 50, 99):
        losses = np.linspace(1.0, 3.0, N) / (step + 1)
        np.testing.assert_allclose(controller.update(step, losses), 1 / N)
    assert not np.allclose(controller.update(100, np.full(N, 0.01)), 1 / N)
