"""Checkpoint integrity: a changed or non-finite checkpoint is refused, the step never keeps a
non-finite state, and no non-finite state is written."""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.checkpoint import Checkpointer, _checksum
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

CONFIG = ("train.steps=6", "train.checkpoint_every=2", "train.keep_checkpoints=3")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with checkpoints 2, 4 and 6."""
    run_dir = tmp_path_factory.mktemp("integrity")
    trainer = Trainer(tiny_config(*CONFIG), run_dir)
    trainer.fit()
    trainer.close()
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(run_dir, tmp_path / "copy")
    return tmp_path / "copy"


def _resume(run_dir: Path) -> Trainer:
    trainer = Trainer(tiny_config(*CONFIG), run_dir, resume=True)
    trainer.close()
    return trainer


def _array_files(checkpoint: Path) -> list[Path]:
    return sorted(checkpoint.glob("state/ocdbt.process_0/d/*"), key=lambda p: p.stat().st_size)


def test_a_flipped_byte_in_an_array_file_is_refused(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    largest = _array_files(copy / "checkpoints" / "6")[-1]
    data = bytearray(largest.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 8):
        data[i] ^= 0xFF
    largest.write_bytes(bytes(data))
    with pytest.raises(BirdieError) as caught:
        _resume(copy)
    message = str(caught.value)
    assert "checkpoint 6" in message and "damaged" in message, message
    assert "checkpoint 4 is intact" in message and "--step 4" in message
    assert "--resume-from 4" in message and "which deletes checkpoint 6" in message
    assert sorted(int(p.name) for p in (copy / "checkpoints").iterdir()) == [2, 4, 6]


def test_arrays_changed_since_written_are_refused(run_dir, tmp_path):
    """Checkpoint 4's arrays under checkpoint 6's metadata: each file reads, none is 6's."""
    copy = _copy(run_dir, tmp_path)
    shutil.rmtree(copy / "checkpoints" / "6" / "state")
    shutil.copytree(copy / "checkpoints" / "4" / "state", copy / "checkpoints" / "6" / "state")
    with pytest.raises(BirdieError, match=r"checkpoint 6 .*the array \w+/\S+ differs from "
                       r"the one written.*checkpoint 4 is intact"):  # fmt: skip
        _resume(copy)


def test_a_checkpoint_holding_non_finite_values_is_refused(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    trainer = Trainer(tiny_config(*CONFIG), copy, resume=True)
    poisoned = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), trainer.state["params"])
    state = {"params": poisoned, "opt_state": trainer.state["opt_state"]}
    checkpointer = Checkpointer(copy)
    meta = checkpointer.restore(trainer.state, 6)[1]
    trainer.close()
    # Written past the refusal, as a damaged disk or another tool might leave it.
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta | {"step": 8})}
    checkpointer.manager.save(8, args=ocp.args.Composite(**items))
    checkpointer.manager.wait_until_finished()
    checkpointer.close()
    with pytest.raises(BirdieError, match=r"checkpoint 8 .*non-finite.*checkpoint 6 is intact"):
        Trainer(tiny_config("train.steps=8", *CONFIG[1:]), copy, resume=True)


def test_a_non_finite_state_is_never_written(tmp_path):
    checkpointer = Checkpointer(tmp_path)
    state = {"w": jnp.array([1.0, jnp.inf]), "count": jnp.array(3)}
    with pytest.raises(BirdieError, match="refusing to write checkpoint 1: .*non-finite"):
        checkpointer.save(1, state, {"step": 1})
    assert checkpointer.steps() == []
    checkpointer.close()


def test_a_missing_item_is_named_without_python_reprs(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    shutil.rmtree(copy / "checkpoints" / "6" / "meta")
    with pytest.raises(BirdieError) as caught:
        _resume(copy)
    message = str(caught.value)
    assert "checkpoint 6" in message and "checkpoint 4 is intact" in message
    assert "KeyError" not in message and "['" not in message and "\\'" not in message, message


def test_an_update_that_makes_the_state_non_finite_is_skipped(tmp_path):
    """Finite loss and gradients, but Adam's moments hold NaN: the update would be NaN."""
    trainer = Trainer(tiny_config(), tmp_path / "run")
    params_before = [np.asarray(x) for x in jax.tree.leaves(trainer.params)]
    trainer.run.opt_state = jax.tree.map(
        lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        trainer.run.opt_state,
    )
    metrics = trainer.train_one()
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    assert not bool(metrics["finite"])
    for before, after in zip(params_before, jax.tree.leaves(trainer.params), strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))
    trainer.close()


def test_checksum_sees_any_single_flipped_bit():
    x = jnp.arange(12, dtype=jnp.float32).reshape(3, 4) / 7
    bits = np.asarray(jax.lax.bitcast_convert_type(x, jnp.uint32))
    reference = int(_checksum(x))
    for index, bit in [((0, 0), 0), ((1, 2), 31), ((2, 3), 17)]:
        flipped = bits.copy()
        flipped[index] ^= np.uint32(1 << bit)
        assert int(_checksum(jax.lax.bitcast_convert_type(jnp.asarray(flipped), jnp.float32))) \
            != reference  # fmt: skip
    # The same values in another order are another array.
    assert int(_checksum(x[::-1])) != reference
    for dtype in (jnp.bfloat16, jnp.int32, jnp.bool_, jnp.uint8):
        assert int(_checksum(x.astype(dtype))) == int(_checksum(x.astype(dtype)))
