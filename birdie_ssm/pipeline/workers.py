"""Data worker processes: packed batches produced ahead of the trainer.

The batches are defined by the pipeline's streams (``Pipeline``: batch ``b`` comes from stream
``b mod S``), not by the workers: worker ``w`` of ``W`` runs the streams ``s`` with
``s mod W == w`` and produces their batches in order. So the same run gives the same batches
with any worker count, in-process included, and its state (the streams' states) resumes on any.
With each batch a worker sends that stream's state *after* it; the pool's checkpoint state is
the state behind the last batch the trainer took. A mixture change (or a restore) rewinds every
worker to that state under a new generation number, and batches from older generations are
dropped: a resumed run sees exactly the batches the uninterrupted run would have seen.
Processes are spawned (the parent holds JAX threads, so no fork), receive the corpus, tokenizer
and arms pickled (the corpus pickles as its cache paths: each worker maps the token files
itself; ``.py`` plug-in files are loaded first, as their modules' names exist only where they
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
from pathlib import Path
from typing import Any

import numpy as np

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline.documents import TokenCorpus
from birdie_ssm.pipeline.inprocess import (
    STATE_VERSION,
    Pipeline,
    check_mixture,
    check_state,
    check_streams,
    source_totals,
)
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
    workers: int,
    shared: bytes,
    spec: dict[str, Any],
    files: list[str],
    commands: Any,
    batches: Any,
    errors: Any,
) -> None:
    """A worker's loop: apply commands, produce its next batch, hand it over (dropping it on a
    reset).

    ``shared`` is the pickled corpus, tokenizer and arms, read only once the plug-in ``files``
    are loaded (objectives and tasks they define are pickled by their modules' names); ``spec``
    the rest of the ``Pipeline`` arguments."""
    batches.cancel_join_thread()  # never block exit on batches nobody will read
    parent = mp.parent_process()
    try:
        for path in files:
            plugins.import_module(path, f"data worker {index}")
        corpus, tokenizer, arms = pickle.loads(shared)
        pipe = Pipeline(corpus, tokenizer, arms, **spec)
        streams = len(pipe.streams)
        generation, taken = 0, 0
        while True:
            try:
                while True:
                    command = commands.get_nowait()
                    if command[0] == "stop":
                        return
                    _, generation, taken, states = command
                    for s, state in states.items():
                        pipe.streams[s].load_state_dict(state)
            except queue.Empty:
                pass
            while (taken % streams) % workers != index:
                taken += 1
            stream = pipe.streams[taken % streams]
            batch = stream.next_batch()
            message = (generation, taken, batch.as_dict(), stream.state_dict())
            taken += 1
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


def pickled(corpus: TokenCorpus, tokenizer: Tokenizer, arms: list[Arm]) -> bytes:
    """What every worker receives, pickled once; a piece that cannot be pickled is a
    BirdieError naming it."""
    try:
        return pickle.dumps((corpus, tokenizer, arms))
    except Exception:  # PicklingError, AttributeError, TypeError: all mean "cannot"
        pass
    pieces = [("the document source", corpus), ("the tokenizer", tokenizer)]
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
    """The ``Pipeline`` interface, served by ``workers`` spawned processes sharing out its
    streams (the batches are the in-process ``Pipeline``'s, whatever the count)."""

    def __init__(
        self,
        corpus: TokenCorpus,
        tokenizer: Tokenizer,
        arms: list[Arm],
        *,
        seq_len: int,
        batch_size: int,
        seed: int,
        mixture: np.ndarray,
        workers: int,
        streams: int = 1,
        prefetch: int = 4,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        if not 1 <= workers <= streams:
            raise BirdieError(
                f"data.workers {workers} exceeds data.streams {streams}: a worker runs whole "
                f"streams; set data.workers <= {streams} or raise data.streams"
            )
        shared = pickled(corpus, tokenizer, arms)
        self.arms, self.workers, self.names = arms, workers, corpus.names
        spec = dict(
            seq_len=seq_len,
            batch_size=batch_size,
            seed=seed,
            mixture=mixture,
            streams=streams,
            process_index=process_index,
            process_count=process_count,
        )
        # The state behind the last batch taken from each stream (initially its fresh state).
        self.states = [s.state_dict() for s in Pipeline(corpus, tokenizer, arms, **spec).streams]
        self.mixture = check_mixture(mixture, len(arms))
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
                args=(
                    w,
                    workers,
                    shared,
                    spec,
                    files,
                    self.commands[w],
                    self.batches[w],
                    self.errors,
                ),  # fmt: skip
                name=f"birdie-data-{w}",
                daemon=True,
            )
            for w in range(workers)
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
        """The next packed batch (from the worker running its stream); raises if a worker
        failed."""
        if not self._finalizer.alive:
            raise BirdieError("the data pipeline is closed")
        stream = self.taken % len(self.states)
        w = stream % self.workers
        while True:
            self._raise_worker_error()
            try:
                generation, index, arrays, state = self.ready[w].get(timeout=_POLL_S)
            except queue.Empty:
                if not self.processes[w].is_alive():
                    self._raise_worker_error(w)
                continue
            if generation == self.generation:
                assert index == self.taken, (index, self.taken)
                self.states[stream] = state
                self.taken += 1
                return Batch(**arrays)

    def _rewind(self) -> None:
        """Restart every worker from the states behind the last taken batches (new
        generation)."""
        self.generation += 1
        mixture = self.mixture.tolist()
        states = [
            # a new mixture: its token shares count from zero
            dict(s, mixture=mixture, arm_tokens=[0] * len(self.arms))
            if s["mixture"] != mixture
            else s
            for s in self.states
        ]
        for w in range(self.workers):
            own = {i: s for i, s in enumerate(states) if i % self.workers == w}
            self.commands[w].put(("reset", self.generation, self.taken, own))

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Sample every batch not yet taken from ``mixture``; workers keep running."""
        mixture = check_mixture(mixture, len(self.arms))
        if np.array_equal(mixture, self.mixture):
            return
        self.mixture = mixture
        self._rewind()

    def source_tokens(self) -> dict[str, int]:
        """Tokens read from each corpus source for the batches taken so far, by name."""
        return source_totals(self.names, self.states)

    def state_dict(self) -> dict[str, Any]:
        """The streams' states behind the last taken batches, and the mixture (the in-process
        ``Pipeline``'s format: no worker count in it)."""
        return {
            "version": STATE_VERSION,
            "taken": self.taken,
            "streams": list(self.states),
            "mixture": self.mixture.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from a ``state_dict()`` of a pipeline with the same streams."""
        check_state(state)
        check_streams(state, len(self.states))
        self.taken = int(state["taken"])
        self.states = list(state["streams"])
        self.mixture = np.asarray(state["mixture"], dtype=np.float64)
        self._rewind()

    def close(self) -> None:
        """Stop the workers (idempotent; also runs at exit or when the pool is collected)."""
        self._finalizer()
