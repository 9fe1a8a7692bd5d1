"""Orbax checkpoints holding everything a resumed run needs.

A checkpoint is one Orbax step directory with two items: ``state`` (the train state: params and
optimizer state, as arrays) and ``meta`` (JSON: step, controller state, pipeline state, the
config). Orbax writes each step to a temporary directory and renames it when complete, so a
crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from birdie_ssm.errors import BirdieError
from birdie_ssm.train import rundir


def _abstract(x: Any) -> Any:
    # Keep the target's sharding so a restored array lands where the run expects it.
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def _first_words(cause: Exception) -> str:
    """The first line of an Orbax/TensorStore error without the reprs it embeds."""
    first = next((ln for ln in str(cause).splitlines() if ln.strip()), "")
    # TensorStore appends "See full TensorStore details: <bound method ...>": words for nobody.
    first = first.split("See full TensorStore details")[0]
    previous = None
    while previous != first:  # nested reprs: <bound method f of <object at 0x...>>
        previous, first = first, re.sub(r"<[^<>]*>", "", first)
    first = first.split("<")[0]  # a repr left open
    return re.sub(r"\s+", " ", first).strip(" .:;")[:200]


_QUIET = False


def _from_orbax(exc: BaseException | None) -> bool:
    """Whether ``exc`` was raised inside Orbax (its traceback passes through an Orbax file)."""
    tb = getattr(exc, "__traceback__", None)
    while tb is not None:
        if "orbax" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


class _AbandonedReads(logging.Filter):
    """Drops asyncio's "exception was never retrieved" reports of Orbax's failed reads."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A read failing inside TensorStore has no Orbax frame in its traceback, but asyncio's
        # message names the task's coroutine and the Orbax file it is defined in.
        raised_in_orbax = bool(record.exc_info) and _from_orbax(record.exc_info[1])
        return not (raised_in_orbax or "orbax" in record.getMessage())


def _quiet_abandoned_reads() -> None:
    """Silence Orbax's abandoned array reads (once per process, after a failed restore).

    Orbax reads a checkpoint's arrays in concurrent coroutines and tasks; when one read fails,
    the others are dropped unfinished and each is reported whenever it is collected, after the
    one-line error: by Python ("Exception ignored in: <coroutine ...>") or by asyncio's logger
    ("Task exception was never retrieved"), each with a traceback, and its reader threads may
    find the loop closed. Reports of anything else still go through.
    """
    global _QUIET
    if _QUIET:
        return
    previous = sys.unraisablehook

    def hook(args: Any) -> None:
        code = getattr(args.object, "cr_code", None)
        if code is not None and "orbax" in code.co_filename:
            return
        # Orbax's reader threads finishing after its event loop closed ("Exception ignored in:
        # None ... RuntimeError: Event loop is closed"): the same abandoned reads, no owner.
        closed = isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(
            args.exc_value
        )
        if args.object is None and closed:
            return
        previous(args)

    sys.unraisablehook, _QUIET = hook, True
    logging.getLogger("asyncio").addFilter(_AbandonedReads())


class Damaged(BirdieError):
    """A checkpoint that cannot be restored; says which earlier one is intact, if known."""

    def __init__(self, step: int, directory: Path, cause: Exception) -> None:
        self.step, self.directory = step, directory
        self.intact: int | None = None
        self.probed = False  # whether earlier checkpoints were tried
        self.detail, self.kind = _first_words(cause), type(cause).__name__
        super().__init__(str(self))

    def __str__(self) -> str:
        text = (f"checkpoint {self.step} in '{self.directory}' is damaged or incomplete and "
                f"cannot be restored "
                f"({self.kind}{': ' + self.detail if self.detail else ''})")  # fmt: skip
        if self.intact is not None:
            run_dir = shlex.quote(str(self.directory.parent))
            return text + (f"; checkpoint {self.intact} is intact: continue from it with "
                           f"`birdie-ssm train --resume-from {self.intact} "
                           f"--run-dir {run_dir}`")  # fmt: skip
        return text + ("; no earlier checkpoint is intact" if self.probed else "")


class Checkpointer:
    """Saves and restores (state pytree, JSON metadata) pairs under ``run_dir/checkpoints``."""

    def __init__(self, run_dir: Path, keep: int = 2) -> None:
        self.directory = rundir.checkpoints_dir(Path(run_dir).absolute())
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

    def steps(self) -> list[int]:
        """The steps of the checkpoints on disk, ascending."""
        return sorted(self.manager.all_steps())

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise BirdieError(f"no checkpoint found in '{self.directory}'")
        if step not in self.manager.all_steps():
            raise BirdieError(
                f"no checkpoint {step} in '{self.directory}'; there are: "
                f"{', '.join(map(str, self.steps())) or 'none'}"
            )
        return step

    def _restore(self, step: int, **items: Any) -> Any:
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as exc:  # Orbax raises many types for missing or mismatched files
            _quiet_abandoned_reads()
            raise Damaged(step, self.directory, exc) from None

    def restore(
        self,
        target: Any,
        step: int | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Restore checkpoint ``step`` (the latest by default) into the structure of ``target``
        (arrays or shape/dtype structs); returns (state, metadata).

        ``check(meta)`` sees the metadata before any array is read and may refuse the
        checkpoint by raising. A damaged checkpoint is refused, naming the newest earlier one
        that restores intact.
        """
        step = self._step(step)
        abstract = jax.tree.map(_abstract, target)
        items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
        try:
            meta = dict(self._restore(step, meta=ocp.args.JsonRestore())["meta"])
            if check is not None:
                check(meta)
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

    def remove_after(self, step: int) -> list[int]:
        """Delete the checkpoints later than ``step``; returns their steps."""
        later = [s for s in self.steps() if s > step]
        for s in later:
            self.manager.delete(s)
        return later

    def close(self) -> None:
        self.manager.close()
