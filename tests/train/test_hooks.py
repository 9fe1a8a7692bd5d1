"""The loop calls its hooks: on_step after every step, on_eval after each validation,
on_checkpoint after each checkpoint."""

from birdie_ssm.train.trainer import Hooks, Trainer
from tests.helpers import tiny_config


def test_hooks_are_called_in_order(tmp_path):
    calls = []
    hooks = Hooks(
        on_step=[lambda t, m: calls.append(("step", t.step, float(m["loss"]) > 0))],
        on_eval=[lambda t, losses: calls.append(("eval", t.step, len(losses)))],
    )
    config = tiny_config(
        "train.steps=4", "eval.schedule=every", "eval.every=2", "train.checkpoint_every=3"
    )
    trainer = Trainer(config, tmp_path / "run", hooks=hooks)
    trainer.hooks.on_checkpoint.append(lambda t, step: calls.append(("checkpoint", step)))
    trainer.fit()
    trainer.close()
    n = len(trainer.arm_names)
    assert calls == [
        ("eval", 0, n),
        ("step", 1, True),
        ("step", 2, True),
        ("eval", 2, n),
        ("step", 3, True),
        ("checkpoint", 3),
        ("step", 4, True),
        ("eval", 4, n),
        ("checkpoint", 4),
    ]
