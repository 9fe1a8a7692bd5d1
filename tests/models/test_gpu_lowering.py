"""Each SSM preset's training gradient lowers for CUDA with the Triton scan kernel, on a CPU.

The kernel tests lower the bare kernel; here it sits in the model as training runs it: float32
decays with bfloat16 inputs, bidirectional channel halves (a reversed scan), the RG-LRU's
gates, the layer scan with remat. Only compiling for the device needs a GPU (``pytest -m gpu``).
Attention layers take the xla path here: cuDNN's lowering asks the GPU for its version.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from birdie_ssm.config import load_config
from birdie_ssm.models import attention
from birdie_ssm.models.lm import build_model
from tests.helpers import TRITON_CALL, target_gpu

pytestmark = pytest.mark.slow  # lowers each preset's training gradient for CUDA

PRESETS = "configs/models/{}.yaml"
SMALL = ["model.width=96", "model.depth=3", "model.vocab_size=256", "model.scan_impl=pallas"]


@pytest.mark.parametrize(
    ("preset", "extra"),
    [
        ("gated-125m", []),
        ("hawk-125m", []),
        ("griffin-125m", []),
        ("gated-125m", ["model.depth=4", "model.scan_layers=true", "model.remat=true"]),
    ],
    ids=["gated", "hawk", "griffin", "gated-scanned-remat"],
)
def test_preset_gradient_lowers_through_triton(preset, extra, monkeypatch):
    monkeypatch.setenv(attention.IMPL_ENV, "xla")
    probes = attention.cudnn_problem.cache_info()
    config = load_config(PRESETS.format(preset), [*SMALL, *extra]).model
    assert config.dtype == "bfloat16"
    graphdef, state = nnx.split(build_model(config, 256, nnx.Rngs(0)))

    def loss(state, ids, prefix_mask, segment_ids):
        logits = nnx.merge(graphdef, state)(ids, prefix_mask, segment_ids)
        return jnp.mean(logits.astype(jnp.float32) ** 2)

    ids = jax.ShapeDtypeStruct((2, 64), jnp.int32)
    prefix = jax.ShapeDtypeStruct((2, 64), jnp.bool_)
    # The Pallas kernel compiles where the backend is a GPU and is interpreted elsewhere.
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with target_gpu():
        lowered = jax.jit(jax.value_and_grad(loss)).trace(state, ids, prefix, ids)
        text = lowered.lower(lowering_platforms=("cuda",)).as_text()
    names = re.findall(r'name = "(linear_scan_\w+)"', text)
    assert {"linear_scan_forward", "linear_scan_backward"} <= set(names)
    assert len(re.findall(rf"custom_call @{re.escape(TRITON_CALL)}\(", text)) == len(names)
    assert "mosaic" not in text.lower()
    # Asked for xla, attention neither probes cuDNN nor caches a verdict for this fake backend.
    assert attention.cudnn_problem.cache_info() == probes
