"""Device mesh and shardings: data parallelism and fully-sharded (FSDP) parameters.

The mesh has two axes, ``data`` and ``fsdp``. Batches are split over both (every device sees its
own rows); parameters and optimizer state are split over ``fsdp`` along their largest divisible
dimension and replicated over ``data``. On one device everything is trivially replicated.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from birdie_ssm.config import TrainConfig
from birdie_ssm.errors import BirdieError

BATCH_AXES = ("data", "fsdp")


def make_mesh(config: TrainConfig) -> Mesh:
    """A ``(data, fsdp)`` mesh over all devices (of all hosts)."""
    devices = jax.devices()
    fsdp = config.mesh_fsdp
    data = config.mesh_data or len(devices) // fsdp
    if data * fsdp != len(devices):
        raise BirdieError(
            f"train.mesh_data={config.mesh_data} x train.mesh_fsdp={fsdp} does not match the "
            f"{len(devices)} available devices"
        )
    return Mesh(np.asarray(devices).reshape(data, fsdp), ("data", "fsdp"))


def _spec(shape: tuple[int, ...], fsdp: int) -> PartitionSpec:
    if fsdp == 1 or not shape:
        return PartitionSpec()
    for dim in np.argsort(shape)[::-1]:  # the largest dimension that splits evenly
        if shape[dim] % fsdp == 0:
            parts: list[Any] = [None] * len(shape)
            parts[dim] = "fsdp"
            return PartitionSpec(*parts)
    return PartitionSpec()


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """A NamedSharding per leaf of a params/optimizer-state tree (by shape alone)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, _spec(tuple(np.shape(x)), fsdp)), tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows of a batch split over every device."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def check_batch(batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over devices and hosts."""
    devices = mesh.devices.size
    if batch_size % devices or batch_size % jax.process_count():
        raise BirdieError(
            f"data.batch_size {batch_size} must be a multiple of the {devices} devices "
            f"and {jax.process_count()} hosts"
        )


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Assemble each host's rows into one global, sharded batch."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
