"""The one registry of retrieval tasks, read by evaluation and by the task-format objective.

Built-in task families, one module each (importing a module registers its tasks, in this order):
phonebook (phonebook, multi-phonebook), mqar, copying (copying, selective-copying), infilling.
A task outside the package registers itself with ``register_task`` when imported, or through
the ``birdie_ssm.tasks`` entry-point group.
"""

# The import order is the registry order.
# isort: off
from birdie_ssm.tasks import phonebook as _phonebook  # noqa: F401  (registers its tasks)
from birdie_ssm.tasks import mqar as _mqar  # noqa: F401
from birdie_ssm.tasks import copying as _copying  # noqa: F401
from birdie_ssm.tasks import infilling as _infilling  # noqa: F401

# isort: on
from birdie_ssm import plugins
from birdie_ssm.tasks.base import (
    FORMATS,
    TASKS,
    Item,
    Task,
    TaskSettings,
    check_sweep,
    get_task,
    parse_settings,
    register_task,
    registered_tasks,
    settings_dict,
    sweep_rngs,
    task_settings,
    unregister_task,
)

# The tasks own what eval.tasks accepts: each entry is a task's settings (config composes this).
plugins.register_config_check("eval.tasks", task_settings)

__all__ = [
    "FORMATS",
    "TASKS",
    "Item",
    "Task",
    "TaskSettings",
    "check_sweep",
    "get_task",
    "parse_settings",
    "register_task",
    "registered_tasks",
    "settings_dict",
    "sweep_rngs",
    "task_settings",
    "unregister_task",
]
