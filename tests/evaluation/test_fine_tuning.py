"""Fine-tuning on a task's own format (objective task_format), then evaluating it natively."""

import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from birdie_ssm.cli import main
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import choose_format
from birdie_ssm.tasks import Item
from birdie_ssm.text.tokenizer import ByteTokenizer
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

SPECIALS = ByteTokenizer().specials
FINE_TUNE = "objectives.mixture=[{name: task_format, params: {task: copying}}]"
FIXED = "controller.name=fixed"  # the Birdie controller's reward model costs compilations


def test_a_task_format_run_is_prompted_natively_for_its_tasks():
    config = tiny_config(
        "objectives.mixture=[{name: next_token}, "
        "{name: task_format, params: {task: [phonebook, copying]}}, {name: copying}]"
    )
    for task, native in [("phonebook", None), ("copying", ["copying"])]:
        fmt = choose_format(config, SPECIALS, native, task=task)
        assert (fmt.kind, fmt.objective, fmt.paradigm) == (
            "native",
            "task_format",
            SPECIALS.paradigm(1),
        )
    # A task the run did not fine-tune on keeps the usual choice.
    assert choose_format(config, SPECIALS, None, task="infilling").kind == "causal"


def test_a_text_only_item_is_natively_its_text_form():
    item = Item(np.array([1, 2]), np.array([3]), point=4)
    assert [x.tolist() for x in item.form(native=True)] == [[1, 2], [3]]


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_fine_tune_from_a_checkpoint_then_evaluate_natively(tmp_path, capsys):
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    # Steps and checkpoints by hand, not fit(): its validation passes would add compilations.
    trainer = Trainer(tiny_config(FIXED), first, progress=False)
    trainer.train_one()
    trainer.save()
    trained = [np.asarray(x) for x in jax.tree.leaves(trainer.params)]
    trainer.close()

    trainer = Trainer(tiny_config(FIXED, FINE_TUNE), tuned, progress=False, init_from=first)
    start = jax.tree.leaves(trainer.params)
    assert all(np.array_equal(a, b) for a, b in zip(start, trained, strict=True))
    assert trainer.arm_names == ["task_format"]
    for _ in range(2):
        trainer.train_one()
    trainer.save()
    trainer.close()

    argv = ["eval", "copying", "--checkpoint", str(tuned)]
    settings = ["lengths=[8]", "samples=2", "batch_size=4"]
    assert main([*argv, *[arg for s in settings for arg in ("--set", s)]]) == 0
    out = capsys.readouterr().out
    assert "format native" in out
    result = json.loads(Path(re.findall(r"^written to (.+)$", out, re.M)[-1]).read_text())
    assert result["format"] == "native" and result["step"] == 2
    assert [p["length"] for p in result["points"]] == [8]


def test_init_from_a_different_model_names_the_settings_that_differ(tmp_path):
    first = tmp_path / "first"
    trainer = Trainer(tiny_config(FIXED), first, progress=False)
    trainer.save()
    trainer.close()
    with pytest.raises(BirdieError) as err:
        Trainer(tiny_config(FIXED, "model.scan_layers=true"), tmp_path / "b", init_from=first)
    assert "model.scan_layers: False there, True here" in str(err.value)
    assert not (tmp_path / "b").exists()
