"""Batches for training: documents -> objective examples -> packed rows (``Batch``), made in
the trainer's process (``Pipeline``) or by worker processes (``WorkerPool``), both behind the
``BatchSource`` protocol. The pipeline reads the mixture it is given and nothing else."""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline.documents import TokenCorpus, token_corpus
from birdie_ssm.pipeline.hosts import HostStates
from birdie_ssm.pipeline.inprocess import Pipeline, validation_batches
from birdie_ssm.pipeline.packing import Batch
from birdie_ssm.pipeline.workers import WorkerPool
from birdie_ssm.text.corpus import DocumentSource
from birdie_ssm.text.tokenizer import Tokenizer

__all__ = [
    "Batch",
    "BatchSource",
    "Pipeline",
    "TokenCorpus",
    "WorkerPool",
    "available_host_bytes",
    "check_host_memory",
    "open_pipeline",
    "resolve_workers",
    "token_corpus",
    "validation_batches",
]
AUTO_MAX_WORKERS = 8  # beyond this the trainer's process, not the workers, limits a GPU run
AUTO_SPARE_CPUS = 2  # the trainer's process and the host-to-device feed keep two cores


class BatchSource(Protocol):
    """What the trainer pulls batches from."""

    def next_batch(self) -> Batch: ...

    def set_mixture(self, mixture: np.ndarray) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def source_tokens(self) -> dict[str, int]: ...


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's or job's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_workers(
    workers: int | str, *, platform: str | None = None, cpus: int | None = None
) -> int:
    """The data worker count ``data.workers`` stands for: an int as given; ``"auto"``: 0 on a
    CPU backend (the train step needs the cores), else ``min(8, CPUs - 2)``.

    ``platform`` (the JAX backend) and ``cpus`` default to this process's. The one place the
    count is decided: ``open_pipeline`` uses it. The count does not change the batches.
    CPUs are this process's share (its affinity: a job scheduler's binding counts); with several
    training processes sharing one host's cores unbound, set a number. Call it after
    ``jax.distributed.initialize`` (it reads the default backend).
    """
    if workers != "auto":
        return int(workers)
    if platform is None:
        import jax  # the backend decides, and it is initialised by the time batches are needed

        platform = jax.default_backend()
    if platform == "cpu":
        return 0
    cpus = _usable_cpus() if cpus is None else cpus
    return max(0, min(AUTO_MAX_WORKERS, cpus - AUTO_SPARE_CPUS))


def available_host_bytes() -> int | None:
    """The host memory available to a new allocation (Linux's MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# Bytes a packed batch holds per token: five int32 fields and two bool masks (pipeline.Batch).
BATCH_BYTES_PER_TOKEN = 5 * 4 + 2
# Copies of a batch alive while one is packed: the packer's intermediates, the batch, its
# device-bound copy (the ready batches of the prefetch queues come on top).
PACKING_COPIES = 3


def check_host_memory(data: DataConfig, available: int | None) -> None:
    """Refuse, in one line, a batch whose packing would not fit ``available`` bytes of host
    memory: the pipeline would grow until the kernel killed the process without a word."""
    workers = data.workers if isinstance(data.workers, int) else 1
    batches = PACKING_COPIES + data.prefetch * max(workers, 1)
    need = BATCH_BYTES_PER_TOKEN * data.batch_size * data.seq_len * batches
    if available is not None and need > available:
        raise BirdieError(
            f"a batch of {data.batch_size} x {data.seq_len} tokens needs about "
            f"{need / 2**30:.1f} GiB of host memory to pack ({batches} batches in flight), more "
            f"than the {available / 2**30:.1f} GiB available: lower data.batch_size or "
            "data.seq_len (or data.prefetch)"
        )


def open_pipeline(
    data: DataConfig,
    source: DocumentSource | TokenCorpus,
    tokenizer: Tokenizer,
    arms: list[Arm],
    mixture: np.ndarray,
    *,
    process_index: int = 0,
    process_count: int = 1,
) -> BatchSource:
    """The training pipeline a ``data`` section describes: in-process, or ``data.workers`` processes
    (``"auto"``: see ``resolve_workers``, at most ``data.streams``), with the same batches.

    ``source``: ``make_source(data)`` (file sources are tokenized into the token cache
    here, once) or the ``TokenCorpus`` already made of it. ``data.batch_size`` is the global
    batch; host ``process_index`` of ``process_count`` packs only its own rows of it, from its
    own share of the documents (see ``Pipeline``); its state is every host's
    (``HostStates``).
    """
    corpus = source if isinstance(source, TokenCorpus) else token_corpus(data, source, tokenizer)
    shared = dict(
        seq_len=data.seq_len,
        batch_size=data.batch_size,
        seed=data.seed,
        mixture=mixture,
        streams=data.streams,
        process_index=process_index,
        process_count=process_count,
    )
    workers = resolve_workers(data.workers)
    if data.workers == "auto":
        workers = min(workers, data.streams)
    if workers == 0:
        pipeline: BatchSource = Pipeline(corpus, tokenizer, arms, **shared)
    else:
        pipeline = WorkerPool(
            corpus, tokenizer, arms, **shared, workers=workers, prefetch=data.prefetch
        )
    return HostStates(pipeline, process_index, process_count) if process_count > 1 else pipeline
