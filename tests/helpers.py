"""What several test modules share (a test module never imports another): the tiny run config,
loading a benchmark script, lowering for a GPU on a host without one, the attention tests'
packed batch and explicit-softmax oracle, and a model's forward pass compiled as one program."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.config import Config, load_config

TINY = [
    # The test suite's own mixture and model, fixed here so that tuning the quickstart (which
    # Config() is) does not change what every test exercises.
    "model.bidirectional=none",
    "objectives.mixture=[{name: next_token}, {name: prefix_lm}, "
    "{name: infilling, params: {mask_rate: [0.15, 0.5], mean_span: 3}}]",
    "controller.name=birdie",
    "train.lr=0.003",
    "train.weight_decay=0.1",
    "eval.scale=0.2",
    "model.width=32",
    "model.depth=2",
    "data.seq_len=64",
    "data.batch_size=4",
    "data.val_batches_per_arm=1",
    "data.workers=0",  # no worker processes even where 'auto' would start some (a GPU host)
    "train.steps=30",
    "train.warmup_steps=5",
    "train.log_every=5",
    "train.checkpoint_every=10",
    "train.progress=false",
]


def tiny_config(*overrides: str) -> Config:
    """The quickstart shrunk to a toy size, with extra ``key=value`` overrides."""
    return load_config(None, [*TINY, *overrides])


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# The custom call a Pallas kernel lowered through Triton appears as.
TRITON_CALL = "__gpu$xla.gpu.triton"


def target_gpu() -> contextlib.AbstractContextManager:
    """JAX >= 0.11 lowers a Triton kernel without a GPU only for a named abstract GPU."""
    if not hasattr(jax.sharding, "AbstractDevice"):
        return contextlib.nullcontext()
    h200 = jax.sharding.AbstractDevice(device_kind="NVIDIA H200", num_cores=132, platform="gpu")
    return jax.sharding.use_abstract_mesh(
        jax.sharding.AbstractMesh((1,), ("x",), abstract_device=h200)
    )


# Two packed segments with prefix runs (one in the middle of a segment), then padding.
SEGMENTS = np.array([[1] * 13 + [2] * 14 + [0] * 5, [3] * 20 + [4] * 12])
PREFIX = np.array(
    [
        [True] * 4 + [False] * 3 + [True] * 3 + [False] * 3 + [True] * 6 + [False] * 13,
        [False] * 20 + [True] * 5 + [False] * 7,
    ]
)


def explicit_mix(q, k, v, mask):
    """The pre-fusion implementation: float32 scores, -1e30 where masked, softmax, mix."""
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask, scores * q.shape[-1] ** -0.5, -1e30)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def tiny_mixers(mixer: str, chunk: int) -> dict:
    """ModelConfig settings for a tiny model of ``mixer``: RecurrentGemma's blocks come as a pair
    (rg_recurrent with rg_attention, window 3); the other mixers get small states, and Mamba and
    S4D scan in chunks of ``chunk``, so a row spans several (the last padded)."""
    if mixer == "rg_recurrent":
        return {"attention_mixer": "rg_attention",
                "mixers": {"rg_attention": {"num_heads": 2, "window": 3}}}  # fmt: skip
    return {
        "mixers": {
            "attention": {"num_heads": 2},
            "mamba": {"state_size": 4, "chunk": chunk},
            "s4d": {"state_size": 4, "chunk": chunk},
            "s5": {"state_size": 8},
            "lru": {"state_size": 8},
        }
    }


def jit_forward(model: nnx.Module, *args):
    """``model(*args)`` compiled as one program: a fraction of the time that running it op by op
    spends compiling each op. Traced afresh at every call, so what a test monkeypatches between
    two calls (attention's QUERY_BLOCK, its implementation) takes effect."""
    graphdef, state = nnx.split(model)
    return jax.jit(lambda state, *args: nnx.merge(graphdef, state)(*args))(state, *args)
