"""Batches for training: documents -> objective examples -> packed rows (``Batch``), made in
the trainer's process (``Pipeline``) or by worker processes (``WorkerPool``), both behind the
``BatchSource`` protocol. The pipeline reads the mixture it is given and nothing else."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from birdie_ssm.config import Config
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline.inprocess import Pipeline, validation_batches
from birdie_ssm.pipeline.packing import Batch
from birdie_ssm.pipeline.workers import WorkerPool
from birdie_ssm.text.corpus import DocumentSource
from birdie_ssm.text.tokenizer import Tokenizer

__all__ = ["Batch", "BatchSource", "Pipeline", "WorkerPool", "open_pipeline", "validation_batches"]


class BatchSource(Protocol):
    """What the trainer pulls batches from."""

    def next_batch(self) -> Batch: ...

    def set_mixture(self, mixture: np.ndarray) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def open_pipeline(
    config: Config,
    source: DocumentSource,
    tokenizer: Tokenizer,
    arms: list[Arm],
    mixture: np.ndarray,
    *,
    process_index: int = 0,
    process_count: int = 1,
) -> BatchSource:
    """The training pipeline a config describes: in-process, or ``data.workers`` processes.

    ``data.batch_size`` is the global batch; host ``process_index`` of ``process_count`` is
    served its own rows of it (see ``Pipeline``).
    """
    data = config.data
    shared = dict(
        seq_len=data.seq_len,
        batch_size=data.batch_size,
        seed=data.seed,
        mixture=mixture,
        process_index=process_index,
        process_count=process_count,
    )
    if data.workers == 0:
        return Pipeline(source.train, tokenizer, arms, **shared)
    return WorkerPool(
        source.train, tokenizer, arms, **shared, workers=data.workers, prefetch=data.prefetch
    )
