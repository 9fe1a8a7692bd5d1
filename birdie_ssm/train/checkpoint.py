"""Orbax checkpoints holding everything a resumed run needs.

A checkpoint is one Orbax step directory with two items: ``state`` (the train state: params and
optimizer state, as arrays) and ``meta`` (JSON: step, controller state, pipeline state, the
config, and a checksum of every array of the state). Orbax writes each step to a temporary
directory and renames it when complete, so a crash mid-write leaves the previous checkpoint
intact; a checkpoint whose arrays changed on disk since (a checksum differs) or that holds
non-finite values is refused at restore like one that cannot be read, and a state with
non-finite values is never written.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from birdie_ssm.errors import BirdieError
from birdie_ssm.train import rundir


def _abstract(x: Any) -> Any:
    # Keep the target's sharding so a restored array lands where the run expects it.
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def _checksum(x: jax.Array) -> jax.Array:
    """A uint32 checksum of an array's bytes: the sum of its elements' bits, each times an odd
    weight from its position, modulo 2**32. Integer sums are exact in any order, so it does
    not depend on sharding, and any single flipped bit changes it."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    bits = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).reshape(-1)
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def _fingerprint(state: Any) -> tuple[list[jax.Array], jax.Array]:
    """Each leaf's checksum, and whether every floating-point value is finite."""
    leaves = jax.tree.leaves(state)
    finite = [jnp.isfinite(x).all() for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    return [_checksum(x) for x in leaves], jnp.all(jnp.stack([jnp.bool_(True), *finite]))


def _leaf_names(state: Any) -> list[str]:
    return [
        jax.tree_util.keystr(path, simple=True, separator="/")
        for path, _ in jax.tree_util.tree_leaves_with_path(state)
    ]


def _first_words(cause: BaseException) -> str:
    """The first line of an Orbax/TensorStore error without the reprs it embeds."""
    # A KeyError's str() is the repr of its message.
    text = str(cause.args[0]) if isinstance(cause, KeyError) and cause.args else str(cause)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    # TensorStore appends "See full TensorStore details: <bound method ...>": words for nobody.
    first = first.split("See full TensorStore details")[0]
    previous = None
    while previous != first:  # nested reprs: <bound method f of <object at 0x...>>
        previous, first = first, re.sub(r"<[^<>]*>", "", first)
    first = first.split("<")[0]  # a repr left open
    # A Python list of names ("Available items: ['state']") as plain words.
    first = re.sub(r"\[([^\[\]]*)\]", lambda m: re.sub(r"['\"]", "", m.group(1)), first)
    return re.sub(r"\s+", " ", first).strip(" .:;")[:200]


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


def _abandoned_read(args: Any) -> bool:
    """Whether an unraisable report is one of Orbax's abandoned reads."""
    code = getattr(args.object, "cr_code", None)
    if code is not None and "orbax" in code.co_filename:
        return True
    # Orbax's reader threads finishing after its event loop closed ("Exception ignored in:
    # None ... RuntimeError: Event loop is closed"): the same abandoned reads, no owner.
    closed = isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(
        args.exc_value
    )
    return args.object is None and closed


@contextlib.contextmanager
def _quiet_abandoned_reads() -> Iterator[None]:
    """Silence Orbax's abandoned array reads while a restore runs.

    Orbax reads a checkpoint's arrays in concurrent coroutines and tasks; when one read fails,
    the others are dropped unfinished and each is reported when it is collected: by Python
    ("Exception ignored in: <coroutine ...>") or by asyncio's logger ("Task exception was never
    retrieved"), each with a traceback, after the one-line error. They are collected before
    the filters come off; reports of anything else go through.
    """
    previous, quiet = sys.unraisablehook, _AbandonedReads()

    def hook(args: Any) -> None:
        if not _abandoned_read(args):
            previous(args)

    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(quiet)
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous
        logging.getLogger("asyncio").removeFilter(quiet)


class Damaged(BirdieError):
    """A checkpoint that cannot be restored; says which earlier one is intact, if known."""

    def __init__(self, step: int, directory: Path, cause: BaseException) -> None:
        self.step, self.directory = step, directory
        self.intact: int | None = None
        self.later: list[int] = []  # the checkpoints after ``intact``, which resuming deletes
        self.probed = False  # whether earlier checkpoints were tried
        self.detail = _first_words(cause) or type(cause).__name__
        super().__init__(str(self))

    def __str__(self) -> str:
        text = (f"checkpoint {self.step} in '{self.directory}' is damaged or incomplete and "
                f"cannot be restored ({self.detail})")  # fmt: skip
        if self.intact is not None:
            run_dir = shlex.quote(str(self.directory.parent))
            deleted = ", ".join(map(str, self.later))
            return text + (f"; checkpoint {self.intact} is intact: evaluate it with --step "
                           f"{self.intact}, or train on from it with `birdie-ssm train "
                           f"--resume-from {self.intact} --run-dir {run_dir}`, which deletes "
                           f"checkpoint{'s' if len(self.later) > 1 else ''} "
                           f"{deleted}")  # fmt: skip
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
        """Write checkpoint ``step``, with every array's checksum, and wait until it is complete
        on disk; a state holding non-finite values is refused, so none is ever written."""
        checksums, finite = _fingerprint(state)
        if not bool(finite):
            raise BirdieError(
                f"refusing to write checkpoint {step}: the train state holds non-finite values"
            )
        meta = {**meta, "checksums": [int(c) for c in checksums]}
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
        damage = None
        with _quiet_abandoned_reads():
            try:
                return self.manager.restore(step, args=ocp.args.Composite(**items))
            except Exception as exc:  # Orbax raises many types for missing or mismatched files
                damage = Damaged(step, self.directory, exc)
        raise damage

    def _read(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Checkpoint ``step`` in the structure of ``target``, its arrays checked against the
        checksums written with them and for non-finite values."""
        abstract = jax.tree.map(_abstract, target)
        out = self._restore(
            step, state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        )
        # Orbax hands back plain tuples/dicts; put the leaves back into the target's structure.
        state = jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(out["state"]))
        meta = dict(out["meta"])
        checksums, finite = _fingerprint(state)
        saved = meta.pop("checksums", None)
        if saved is not None:
            names = _leaf_names(state)
            for name, now, then in zip(names, checksums, saved, strict=True):
                if int(now) != int(then):
                    raise Damaged(step, self.directory, ValueError(
                        f"the array {name} differs from the one written"))  # fmt: skip
        if not bool(finite):
            raise Damaged(step, self.directory, ValueError("it holds non-finite values"))
        return state, meta

    def restore(
        self,
        target: Any,
        step: int | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Restore checkpoint ``step`` (the latest by default) into the structure of ``target``
        (arrays or shape/dtype structs); returns (state, metadata).

        ``check(meta)`` sees the metadata before any array is read and may refuse the
        checkpoint by raising. A damaged checkpoint (unreadable, an array changed since it was
        written, or non-finite values) is refused, naming the newest earlier one that restores
        intact.
        """
        step = self._step(step)
        try:
            meta = dict(self._restore(step, meta=ocp.args.JsonRestore())["meta"])
            if check is not None:
                check(meta)
            return self._read(step, target)
        except Damaged as exc:
            exc.intact, exc.probed = self._newest_intact(step, target), True
            exc.later = [s for s in self.steps() if exc.intact is not None and s > exc.intact]
            raise BirdieError(str(exc)) from None

    def _newest_intact(self, step: int, target: Any) -> int | None:
        for earlier in sorted((s for s in self.manager.all_steps() if s < step), reverse=True):
            try:
                self._read(earlier, target)
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
