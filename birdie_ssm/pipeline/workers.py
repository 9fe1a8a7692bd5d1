"""Data worker processes: packed batches produced ahead of the trainer.

Worker ``w`` of ``N`` runs its own ``Pipeline`` over documents ``w, w+N, ...`` with an rng seeded
by ``(seed, w)``; batch ``b`` comes from worker ``b mod N``. So the stream is a pure function of
(seed, worker count, per-worker state). With each batch a worker sends its state *after* that
batch; the pool's checkpoint state is the state behind the last batch the trainer took. A mixture
change (or a restore) rewinds every worker to that state under a new generation number, and
batches from older generations are dropped: a resumed run sees exactly the batches the
uninterrupted run would have seen. Each worker keeps its own per-arm target-token counts (in its
state), so every worker's share, and so the pool's, tracks the requested mixture. Processes are
spawned (the parent holds JAX threads, so no fork), receive the documents, tokenizer and arms
pickled (``.py`` plug-in files are loaded first, as their modules' names exist only where they
were loaded), and are stopped by ``close()``, by a finaliser, or at interpreter exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import queue
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline.inprocess import Pipeline, check_mixture, check_workers
from birdie_ssm.pipeline.packing import Batch
from birdie_ssm.text.tokenizer import Tokenizer

_POLL_S = 0.1


class PipelineWorkerError(BirdieError):
    """A data worker raised or died; the message carries its traceback."""


def plugin_files() -> list[str]:
    """The ``.py`` plug-ins this process loaded by path (their modules have made-up names that a
    fresh process knows only once it loads the same files)."""
    return [
        str(Path(plugins.origin(name)).resolve())
        for name in list(sys.modules)
        if plugins.origin(name) != name
    ]


def _worker_main(
    index: int,
    shared: bytes,
    spec: dict[str, Any],
    files: list[str],
    commands: Any,
    batches: Any,
    errors: Any,
) -> None:
    """A worker's loop: apply commands, produce a batch, hand it over (dropping it on a reset).

    ``shared`` is the pickled documents, tokenizer and arms, read only once the plug-in
    ``files`` are loaded (objectives and tasks they define are pickled by their modules' names);
    ``spec`` the rest of this worker's ``Pipeline`` arguments."""
    batches.cancel_join_thread()  # never block exit on batches nobody will read
    parent = mp.parent_process()
    try:
        for path in files:
            plugins.import_module(path, f"data worker {index}")
        documents, tokenizer, arms = pickle.loads(shared)
        pipe = Pipeline(documents, tokenizer, arms, **spec)
        generation = 0
        while True:
            try:
                while True:
                    command = commands.get_nowait()
                    if command[0] == "stop":
                        return
                    _, generation, state = command
                    pipe.load_state_dict(state)
            except queue.Empty:
                pass
            message = (generation, pipe.next_batch().as_dict(), pipe.state_dict())
            while True:
                try:
                    batches.put(message, timeout=_POLL_S)
                    break
                except queue.Full:
                    if parent is not None and not parent.is_alive():
                        return  # the trainer was killed outright: do not linger as an orphan
                    if not commands.empty():
                        break  # a reset or stop makes this batch stale
    except BaseException:
        errors.put((index, traceback.format_exc()))


def pickled(documents: Callable[[int], str], tokenizer: Tokenizer, arms: list[Arm]) -> bytes:
    """What every worker receives, pickled once (the corpus may be large); a piece that cannot
    be pickled is a BirdieError naming it."""
    try:
        return pickle.dumps((documents, tokenizer, arms))
    except Exception:  # PicklingError, AttributeError, TypeError: all mean "cannot"
        pass
    pieces = [("the document source", documents), ("the tokenizer", tokenizer)]
    pieces += [(f"arm '{arm.name}'", arm) for arm in arms]
    for what, piece in pieces:
        try:
            pickle.dumps(piece)
        except Exception as exc:
            raise BirdieError(
                f"data workers receive the pipeline pickled, but {what} cannot be pickled "
                f"({exc}); define its functions at module level, or set data.workers: 0"
            ) from None
    raise BirdieError("data workers receive the pipeline pickled, but it cannot be pickled")


def _pump(source: Any, target: queue.Queue, stop: threading.Event) -> None:
    """Move items from a process queue to a thread queue until ``stop`` is set."""
    while not stop.is_set():
        try:
            item = source.get(timeout=_POLL_S)
        except queue.Empty:
            continue
        except (OSError, ValueError, EOFError):  # the queue is closed or broken: nothing to move
            return
        while not stop.is_set():
            try:
                target.put(item, timeout=_POLL_S)
                break
            except queue.Full:
                continue


def _shutdown(processes: list[Any], commands: list[Any], stop: threading.Event) -> None:
    """Stop reader threads and workers politely, then by force; safe to call twice."""
    stop.set()
    for process, command_queue in zip(processes, commands, strict=True):
        if process.is_alive():
            with contextlib.suppress(OSError, ValueError):  # queue already closed
                command_queue.put(("stop",))
    for process in processes:
        process.join(timeout=2.0)
        if process.is_alive():
            process.terminate()
            process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join()


class WorkerPool:
    """The ``Pipeline`` interface, served by ``workers`` spawned processes (each keeping this
    host's rows of every batch, as ``Pipeline`` does)."""

    def __init__(
        self,
        documents: Callable[[int], str],
        tokenizer: Tokenizer,
        arms: list[Arm],
        *,
        seq_len: int,
        batch_size: int,
        seed: int,
        mixture: np.ndarray,
        workers: int,
        prefetch: int = 4,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        shared = pickled(documents, tokenizer, arms)
        self.arms, self.workers = arms, workers
        specs = [
            dict(
                seq_len=seq_len,
                batch_size=batch_size,
                seed=[seed, w],
                mixture=mixture,
                stride=workers,
                offset=w,
                process_index=process_index,
                process_count=process_count,
            )
            for w in range(workers)
        ]
        # The state behind the last batch taken from each worker (initially its fresh state).
        self.states = [Pipeline(documents, tokenizer, arms, **s).state_dict() for s in specs]
        self.mixture = np.asarray(mixture, dtype=np.float64)
        self.taken = 0
        self.generation = 0
        ctx = mp.get_context("spawn")
        self.errors = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(workers)]
        self.batches = [ctx.Queue(maxsize=prefetch) for _ in range(workers)]
        files = plugin_files()
        self.processes = [
            ctx.Process(
                target=_worker_main,
                args=(w, shared, spec, files, self.commands[w], self.batches[w], self.errors),
                name=f"birdie-data-{w}",
                daemon=True,
            )
            for w, spec in enumerate(specs)
        ]
        for process in self.processes:
            process.start()
        # Reader threads move batches out of the process queues: a worker killed halfway through
        # sending leaves a partial message that would block a reader forever, so only these
        # daemon threads ever block on it, while next_batch keeps watching the processes.
        self.stop = threading.Event()
        self.ready = [queue.Queue(maxsize=1) for _ in range(workers)]
        for w in range(workers):
            threading.Thread(
                target=_pump,
                args=(self.batches[w], self.ready[w], self.stop),
                daemon=True,
                name=f"birdie-data-reader-{w}",
            ).start()
        self._finalizer = weakref.finalize(
            self, _shutdown, self.processes, self.commands, self.stop
        )

    def _raise_worker_error(self, worker: int | None = None) -> None:
        try:
            if worker is None:
                index, trace = self.errors.get_nowait()
            else:  # the worker is gone: give its last words a moment to arrive
                index, trace = self.errors.get(timeout=1.0)
        except queue.Empty:
            if worker is None:
                return
            index, trace = (
                worker,
                f"exit code {self.processes[worker].exitcode} (killed or crashed)",
            )
        self.close()
        raise PipelineWorkerError(f"data worker {index} failed:\n{trace}")

    def next_batch(self) -> Batch:
        """The next packed batch (from worker ``taken mod workers``); raises if a worker failed."""
        if not self._finalizer.alive:
            raise BirdieError("the data pipeline is closed")
        w = self.taken % self.workers
        while True:
            self._raise_worker_error()
            try:
                generation, arrays, state = self.ready[w].get(timeout=_POLL_S)
            except queue.Empty:
                if not self.processes[w].is_alive():
                    self._raise_worker_error(w)
                continue
            if generation == self.generation:
                self.states[w] = state
                self.taken += 1
                return Batch(**arrays)

    def _rewind(self) -> None:
        """Restart every worker from the state behind its last taken batch (new generation)."""
        self.generation += 1
        mixture = self.mixture.tolist()
        for w, state in enumerate(self.states):
            if state["mixture"] != mixture:  # a new mixture: its token shares count from zero
                state = dict(state, mixture=mixture, arm_tokens=[0] * len(self.arms))
            self.commands[w].put(("reset", self.generation, state))

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Sample every batch not yet taken from ``mixture``; workers keep running."""
        mixture = check_mixture(mixture, len(self.arms))
        if np.array_equal(mixture, self.mixture):
            return
        self.mixture = mixture
        self._rewind()

    def state_dict(self) -> dict[str, Any]:
        """Per-worker states behind the last taken batches, and the mixture (JSON-serialisable)."""
        return {
            "workers": self.workers,
            "taken": self.taken,
            "states": list(self.states),
            "mixture": self.mixture.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from a ``state_dict()`` of a pool with the same worker count."""
        check_workers(state, self.workers)
        self.taken = int(state["taken"])
        self.states = list(state["states"])
        self.mixture = np.asarray(state["mixture"], dtype=np.float64)
        self._rewind()

    def close(self) -> None:
        """Stop the workers (idempotent; also runs at exit or when the pool is collected)."""
        self._finalizer()
