"""The task registry: clear errors, and a task registered from outside the package."""

import dataclasses

import numpy as np
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.tasks import TASKS, Task, get_task, register_task, task_settings, unregister_task
from birdie_ssm.tasks.mqar import MqarSettings, score_mqar
from birdie_ssm.text.tokenizer import ByteTokenizer

TOK = ByteTokenizer()


def test_builtin_tasks_in_order():
    assert list(TASKS)[:6] == [
        "phonebook", "multi-phonebook", "mqar", "copying", "selective-copying", "infilling"
    ]  # fmt: skip
    assert get_task("mqar").native == ("associative_recall",)
    assert get_task("copying").native == ("copying",)
    assert get_task("selective-copying").native == ("selective_copying",)
    assert get_task("infilling").native == ("infilling",) and get_task("infilling").needs_documents


def test_unknown_task_lists_the_accepted_ones():
    with pytest.raises(BirdieError, match="unknown task 'trivia' \\(registered: phonebook, "):
        get_task("trivia")


def test_a_taken_name_and_a_malformed_task_are_refused():
    mqar = get_task("mqar")
    with pytest.raises(ValueError, match="already registered"):
        register_task(dataclasses.replace(mqar))
    with pytest.raises(ValueError, match="exactly one of item and document_item"):
        dataclasses.replace(mqar, name="x", item=None)
    with pytest.raises(ValueError, match="no sweep field 'sizes'"):
        dataclasses.replace(mqar, name="x", sweep="sizes")
    with pytest.raises(TypeError, match="must subclass TaskSettings"):
        Task("x", dict, "pairs", "pairs", score_mqar, "accuracy", lambda s, i: 0.0, item=print)


def test_a_task_from_outside_the_package_registers_and_builds_items():
    from tests.tasks.toy_task import registered_toy_task

    toy_task = registered_toy_task()

    try:
        task = get_task(toy_task.NAME)
        settings = task_settings(toy_task.NAME, ["pairs=[3]", "samples=4"])
        items = task.items(settings, TOK)
        assert len(items) == 4 and all(item.point == 3 for item in items)
        oracle = [item.form(True)[1] for item in items]
        assert all(s["exact"] == 1.0 for s in task.score(items, oracle, TOK, True))
    finally:
        unregister_task(toy_task.NAME)
    assert toy_task.NAME not in TASKS


def test_settings_class_of_a_task():
    assert isinstance(task_settings("mqar", {"pairs": [4]}), MqarSettings)
    assert np.isclose(get_task("mqar").chance(task_settings("mqar", {}), []), 0.01)


def test_a_number_layout_on_the_command_line_is_not_a_yaml_comment():
    settings = task_settings("phonebook", ["number_format=###-####", "book_sizes=[4]"])
    assert settings.number_format == "###-####"
