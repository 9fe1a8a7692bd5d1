"""Multi-host pipeline state: every host's own, gathered into one checkpoint.

Each host reads its own documents and packs its own rows, so each host's pipeline state differs;
a checkpoint's JSON is written once, so ``state_dict`` gathers every host's state (a collective:
every host calls it, as every host takes part in saving a checkpoint) and ``load_state_dict``
gives each host its own back.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from birdie_ssm.errors import BirdieError
from birdie_ssm.pipeline.packing import Batch


def gather_json(value: Any) -> list[Any]:
    """``value`` of every host (JSON-serialisable), in process order; a collective."""
    from jax.experimental import multihost_utils  # the pipeline needs JAX only on several hosts

    data = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    lengths = multihost_utils.process_allgather(np.asarray([len(data)], dtype=np.int64))
    padded = np.zeros(int(lengths.max()), dtype=np.uint8)
    padded[: len(data)] = data
    gathered = multihost_utils.process_allgather(padded)
    return [
        json.loads(bytes(row[: int(n)]).decode())
        for row, n in zip(gathered, lengths.ravel(), strict=True)
    ]


class HostStates:
    """A host's ``BatchSource`` whose state is every host's (``process_count`` > 1)."""

    def __init__(self, source: Any, process_index: int, process_count: int) -> None:
        self.source, self.index, self.count = source, process_index, process_count

    def next_batch(self) -> Batch:
        return self.source.next_batch()

    def set_mixture(self, mixture: np.ndarray) -> None:
        self.source.set_mixture(mixture)

    def source_tokens(self) -> dict[str, int]:
        """Tokens this host read per corpus source (hosts read the same shares)."""
        return self.source.source_tokens()

    def close(self) -> None:
        self.source.close()

    def state_dict(self) -> dict[str, Any]:
        """Every host's state (a collective)."""
        return {"hosts": gather_json(self.source.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """This host's part of a ``state_dict()`` saved on as many hosts."""
        hosts = state.get("hosts")
        if hosts is None or len(hosts) != self.count:
            saved = 1 if hosts is None else len(hosts)
            raise BirdieError(
                f"the checkpoint's data pipeline ran on {saved} host(s), this run on "
                f"{self.count}: each host reads its own documents, so resume on {saved}"
            )
        self.source.load_state_dict(hosts[self.index])
