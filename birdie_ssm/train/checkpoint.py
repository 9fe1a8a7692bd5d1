"""Orbax checkpoints holding everything a resumed run needs.

A checkpoint is one Orbax step directory with two items: ``state`` (params and optimizer state,
as arrays) and ``meta`` (JSON: step, controller state, pipeline state, the config). Orbax writes
each step to a temporary directory and renames it when complete, so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from birdie_ssm.errors import BirdieError


def _abstract(x: Any) -> Any:
    # Keep the target's sharding so a restored array lands where the run expects it.
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


class Damaged(BirdieError):
    """A checkpoint that cannot be restored; says which earlier one is intact, if known."""

    def __init__(self, step: int, directory: Path, cause: Exception) -> None:
        self.step, self.directory = step, directory
        self.intact: int | None = None
        self.probed = False  # whether earlier checkpoints were tried
        # Orbax and TensorStore messages carry reprs of bound methods and C++ objects: keep the
        # first line's words, drop anything in angle brackets.
        first = next((ln for ln in str(cause).splitlines() if ln.strip()), "")
        self.detail = re.sub(r"\s+", " ", re.sub(r"<[^<>]*>", "", first)).strip()[:200]
        self.kind = type(cause).__name__
        super().__init__(str(self))

    def __str__(self) -> str:
        text = (f"checkpoint {self.step} in '{self.directory}' is damaged or incomplete and cannot "
                f"be restored ({self.kind}{': ' + self.detail if self.detail else ''})")  # fmt: skip
        if self.intact is not None:
            return text + (f"; checkpoint {self.intact} is intact: continue from it with "
                           f"`birdie-ssm train --resume-from {self.intact}`")  # fmt: skip
        return text + ("; no earlier checkpoint is intact" if self.probed else "")


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
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise BirdieError(f"no checkpoint found in '{self.directory}'")
        if step not in self.manager.all_steps():
            raise BirdieError(
                f"no checkpoint {step} in '{self.directory}'; there are: "
                f"{', '.join(map(str, self.manager.all_steps())) or 'none'}"
            )
        return step

    def _restore(self, step: int, **items: Any) -> Any:
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as exc:  # Orbax raises many types for missing or mismatched files
            raise Damaged(step, self.directory, exc) from None

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of a checkpoint (cheap: no arrays are read)."""
        step = self._step(step)
        return dict(self._restore(step, meta=ocp.args.JsonRestore())["meta"])

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore into the structure of ``target`` (arrays or shape/dtype structs). A damaged
        checkpoint is refused, naming the newest earlier one that restores intact."""
        step = self._step(step)
        abstract = jax.tree.map(_abstract, target)
        items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
        try:
            out = self._restore(step, **items)
        except Damaged as exc:
            exc.intact, exc.probed = self._newest_intact(step, items), True
            raise BirdieError(str(exc)) from None
        # Orbax hands back plain tuples/dicts; put the leaves back into the target's structure.
        state = jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(out["state"]))
        return state, dict(out["meta"])

    def _newest_intact(self, step: int, items: dict[str, Any]) -> int | None:
        for earlier in sorted((s for s in self.manager.all_steps() if s < step), reverse=True):
            try:
                self._restore(earlier, **items)
                return earlier
            except Damaged:
                continue
        return None

    def close(self) -> None:
        self.manager.close()
