"""Model FLOPs per trained token, the devices' peak rate, and MFU (model FLOPs utilisation).

MFU is what MaxText and levanter log: the FLOPs the model needs per second at the measured
token rate, over what the devices could do at their peak. It counts the model's arithmetic, not
what the implementation happens to execute (no rematerialisation, no padding tricks), so runs
and architectures compare like for like.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models import build_model
from birdie_ssm.models.attention import Attention

log = logging.getLogger(__name__)

# Dense peak FLOP/s of one device, from the vendors' spec sheets (no sparsity). "tf32" is what an
# XLA float32 matmul runs at on these GPUs under JAX's default matmul precision; "float32" is
# the CUDA-core rate a float32 matmul gets at precision "highest". Matched in order against
# jax's ``device_kind`` (e.g. "NVIDIA H100 80GB HBM3"): more specific names first.
GPU_PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12},
    "H100 PCIe": {"bfloat16": 756.0e12, "tf32": 378.0e12, "float32": 51.2e12},
    "H100": {"bfloat16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12},
    "A100": {"bfloat16": 312.0e12, "tf32": 156.0e12, "float32": 19.5e12},
}


@dataclass(frozen=True)
class FlopCount:
    """Training FLOPs per token (forward + backward), by part; ``total`` is what MFU uses."""

    params: int  # 6 * non-embedding parameters
    readout: int  # 6 * vocab * width (the tied output projection)
    recurrence: int  # the recurrences' own work, summed over recurrent layers
    attention: int  # 12 * width * seq_len, summed over attention layers

    @property
    def total(self) -> int:
        return self.params + self.readout + self.recurrence + self.attention


def train_flops_per_token(model: nnx.Module, seq_len: int) -> FlopCount:
    """Model FLOPs of one training step, per token of a ``seq_len`` row (a real or abstract model).

    ``6*N + 6*V*W + sum_R 6*D + sum_A 12*W*T``, where

    - N: non-embedding parameters (all but the tied embedding table). Each multiplies once per
      token in the forward pass (2 FLOPs, a multiply and an add) and twice in the backward pass
      (the input's and the weight's gradient): 6 per parameter (Kaplan et al. 2020).
    - V*W: the tied read-out, logits = h @ table.T. The table's lookup costs nothing, its use as
      the output projection costs 2*V*W per token forward (MaxText counts it too).
    - D: a recurrent layer's channels (``width * state_expansion``; both halves of a
      bidirectional layer together). h_t = a_t*h_{t-1} + b_t is a multiply and an add per
      channel per token, times 3 with the backward scan. A mixer whose recurrence does more per
      token than that (a state of N per channel, complex states) states its own training FLOPs
      per token as ``recurrence_flops`` (mamba, s4d, s5, lru), counted instead of 6*D.
    - W*T: an attention layer's scores Q K^T and mixing P V, 2*T*W FLOPs each per query in the
      forward pass over a row of T = ``seq_len`` tokens, times 3: 12*W*T (PaLM, app. B; the whole
      T x T score matrix, which is what the layer computes, so no causal discount).

    Element-wise work (gates, norms, softmax, the optimizer) is not counted, as usual.
    """
    width = model.embedder.width
    vocab, table_width = model.embedder.table.shape
    params = sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    recurrence = attention = 0
    for mixer in model.temporal_mixers():
        if isinstance(mixer, Attention):
            attention += 12 * mixer.heads * mixer.head_dim * seq_len
        elif hasattr(mixer, "recurrence_flops"):
            recurrence += int(mixer.recurrence_flops)
        elif hasattr(mixer, "dim"):  # the recurrent mixers (gated, rglru) keep their channels
            recurrence += 6 * int(mixer.dim)
    assert table_width == width
    return FlopCount(
        params=6 * (params - vocab * width),
        readout=6 * vocab * width,
        recurrence=recurrence,
        attention=attention,
    )


def config_flops_per_token(model_config: ModelConfig, vocab_size: int, seq_len: int) -> FlopCount:
    """``train_flops_per_token`` of the model ``model_config`` describes (built abstractly, no
    memory)."""
    model = nnx.eval_shape(lambda: build_model(model_config, vocab_size, nnx.Rngs(0)))
    return train_flops_per_token(model, seq_len)


# Products chained in one timed call, so the per-call dispatch is small beside the work timed.
MATMULS_PER_CALL = 8


def matmul_flops(
    dtype: str = "float32", size: int = 512, seconds: float = 0.2, device: jax.Device | None = None
) -> float:
    """FLOP/s of a jitted ``size``-square matmul in ``dtype`` on ``device``: the best of about
    ``seconds`` of back-to-back calls (what the hardware's matmul units really deliver now)."""
    device = device or jax.local_devices()[0]
    x = jax.device_put(jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype)), device)
    reps = MATMULS_PER_CALL

    @jax.jit
    def matmuls(a):
        for _ in range(reps):
            a = (a @ x) * jnp.asarray(1.0 / size**0.5, a.dtype)  # keep values O(1)
        return a

    matmuls(x).block_until_ready()  # compile
    best, start = 0.0, time.perf_counter()
    while True:
        t = time.perf_counter()
        matmuls(x).block_until_ready()
        now = time.perf_counter()
        best = max(best, reps * 2 * size**3 / max(now - t, 1e-9))
        if now - start >= seconds:
            return best


@functools.cache
def cpu_matmul_flops(size: int = 512, seconds: float = 0.2) -> float:
    """``matmul_flops`` of a float32 matmul on the CPU, measured once per process.

    The CPU has no spec sheet peak jax could know, so its peak is measured.
    """
    return matmul_flops("float32", size, seconds, jax.local_devices(backend="cpu")[0])


def _gpu_dtype_key(dtype: str) -> str:
    if dtype == "bfloat16":
        return "bfloat16"
    precision = str(jax.config.jax_default_matmul_precision or "default").lower()
    return "float32" if precision in ("highest", "float32") else "tf32"


def peak_flops(dtype: str = "float32") -> tuple[float | None, str]:
    """Peak FLOP/s of all devices together for matmuls in ``dtype``, and where it comes from.

    GPUs: the spec of ``GPU_PEAK_FLOPS`` times the device count (None for a GPU the table does
    not know). CPU: ``cpu_matmul_flops`` measured now (the host devices share the same cores,
    so it is not multiplied). Other backends: None.
    """
    devices = jax.devices()
    kind, platform = devices[0].device_kind, devices[0].platform
    if platform == "cpu":
        rate = cpu_matmul_flops()
        return rate, f"cpu: measured float32 matmul {rate / 1e9:,.1f} GFLOP/s"
    if platform == "gpu":
        key = _gpu_dtype_key(dtype)
        for name, peaks in GPU_PEAK_FLOPS.items():
            if name in kind:
                total = peaks[key] * len(devices)
                return (
                    total,
                    f"{kind} x{len(devices)}: spec {key} {peaks[key] / 1e12:,.1f} TFLOP/s each",
                )
        return None, f"GPU '{kind}' is not in birdie_ssm.train.flops.GPU_PEAK_FLOPS: MFU unknown"
    return None, f"{platform} device '{kind}': no peak known, MFU unknown"


@dataclass(frozen=True)
class MFU:
    """Turns a token rate into model FLOPs utilisation (a fraction; None when the peak is
    unknown)."""

    flops_per_token: float
    peak: float | None  # FLOP/s of all devices together
    source: str  # where ``peak`` comes from, for people reading logs

    def __call__(self, tokens_per_s: float) -> float | None:
        if not self.peak:
            return None
        return self.flops_per_token * tokens_per_s / self.peak


@functools.cache
def _peak(dtype: str) -> tuple[float | None, str]:
    peak, source = peak_flops(dtype)
    if peak is None:
        log.warning("%s; metrics record mfu as null", source)
    return peak, source


def mfu_meter(model_config: ModelConfig, vocab_size: int, seq_len: int) -> MFU:
    """The MFU of training the model ``model_config`` describes on rows of ``seq_len`` tokens."""
    count = config_flops_per_token(model_config, vocab_size, seq_len)
    peak, source = _peak(model_config.dtype)
    return MFU(float(count.total), peak, source)
