"""Orbax checkpoints holding everything a resumed run needs.

A checkpoint is one Orbax step directory with two items: ``state`` (params and optimizer state,
as arrays) and ``meta`` (JSON: step, controller state, pipeline state, the config). Orbax writes
each step to a temporary directory and renames it when complete, so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from birdie_ssm.errors import BirdieError


class Checkpointer:
    """Saves and restores (state pytree, JSON metadata) pairs under ``run_dir/checkpoints``."""

    def __init__(self, run_dir: Path, keep: int = 2) -> None:
        self.directory = Path(run_dir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Write checkpoint ``step`` and wait until it is complete on disk."""
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore into the structure of ``target`` (arrays or shape/dtype structs)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise BirdieError(f"no checkpoint found in '{self.directory}'")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as exc:  # Orbax raises many types for missing or mismatched files
            raise BirdieError(
                f"checkpoint {step} in '{self.directory}' cannot be restored: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        # Orbax hands back plain tuples/dicts; put the leaves back into the target's structure.
        state = jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(out["state"]))
        return state, dict(out["meta"])

    def close(self) -> None:
        self.manager.close()
