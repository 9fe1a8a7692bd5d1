"""Blocks shared by the SSM and Transformer: dense, RMSNorm, gated MLP, short conv, tied
embedding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import BirdieError


def dense(
    d_in: int,
    d_out: int,
    dtype: jnp.dtype,
    rngs: nnx.Rngs,
    *,
    scale: float = 1.0,
    bias: bool = False,
) -> nnx.Linear:
    """A linear layer (bias-free unless asked) with float32 master weights computing in
    ``dtype``."""
    init = nnx.initializers.variance_scaling(scale, "fan_in", "truncated_normal")
    return nnx.Linear(
        d_in,
        d_out,
        use_bias=bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=init,
        rngs=rngs,
    )


class RMSNorm(nnx.Module):
    """Root-mean-square norm computed in float32, output cast back to the activation dtype."""

    def __init__(self, dim: int, *, eps: float = 1e-6):
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...]).astype(x.dtype)


class GatedMLP(nnx.Module):
    """GeLU-gated feed-forward layer: W_down(GeLU(W_gate x) * W_up x), biases optional."""

    def __init__(
        self,
        width: int,
        hidden: int,
        dtype: jnp.dtype,
        depth: int,
        rngs: nnx.Rngs,
        *,
        bias: bool = False,
    ):
        self.gate_up = dense(width, 2 * hidden, dtype, rngs, bias=bias)
        # Output projections are scaled down with depth so the residual stream stays O(1).
        self.down = dense(hidden, width, dtype, rngs, scale=1.0 / depth, bias=bias)

    def __call__(self, x: jax.Array) -> jax.Array:
        gate, up = jnp.split(self.gate_up(x), 2, axis=-1)
        return self.down(jax.nn.gelu(gate) * up)


class ShortConv(nnx.Module):
    """Causal depthwise convolution that never reads across a segment boundary."""

    def __init__(self, dim: int, width: int, rngs: nnx.Rngs):
        self.width = width
        std = 1.0 / width**0.5
        # kernel[j] multiplies x_{t-(width-1)+j}: the window is stored oldest first.
        self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (width, dim), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

    def __call__(self, x: jax.Array, segment_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return the output [B, L, D] and the decode cache (last width-1 inputs of the last
        segment)."""
        k = self.width
        kernel = self.kernel[...].astype(x.dtype)
        xp = jnp.pad(x, ((0, 0), (k - 1, 0), (0, 0)))
        sp = jnp.pad(segment_ids, ((0, 0), (k - 1, 0)), constant_values=-1)
        length = x.shape[1]
        y = x * kernel[k - 1]
        for lag in range(1, k):
            start = k - 1 - lag
            same = (sp[:, start : start + length] == segment_ids)[..., None]
            y = y + jnp.where(same, xp[:, start : start + length], 0) * kernel[k - 1 - lag]
        y = y + self.bias[...].astype(x.dtype)
        keep = (sp[:, length:] == segment_ids[:, -1:])[..., None]
        cache = jnp.where(keep, xp[:, length:], 0)
        return y, cache

    def step(self, x: jax.Array, cache: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One decode step: x [B, D], cache [B, width-1, D] -> (y [B, D], new cache)."""
        window = jnp.concatenate([cache, x[:, None, :]], axis=1)
        y = jnp.einsum("bkd,kd->bd", window, self.kernel[...].astype(x.dtype))
        return y + self.bias[...].astype(x.dtype), window[:, 1:]


@jax.custom_jvp
def sqrt_bounded(x: jax.Array) -> jax.Array:
    """sqrt(x) whose derivative is capped at 1000 (keeps bf16 gradients finite near x = 0)."""
    return jnp.sqrt(x)


@sqrt_bounded.defjvp
def _sqrt_bounded_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = jnp.sqrt(x)
    return y, t * 0.5 / jnp.maximum(y, 5e-4)


def resolve_vocab(config: ModelConfig, vocab_size: int | None) -> int:
    """The vocabulary size from the argument, else from the config."""
    vocab = vocab_size if vocab_size is not None else config.vocab_size
    if vocab is None:
        raise BirdieError("model vocabulary unknown: pass vocab_size or set model.vocab_size")
    return vocab


class Embedder(nnx.Module):
    """Token embedding tied with the output head; logits are float32.

    Inputs are scaled by ``scale`` (default sqrt(width)); ``soft_cap`` c bounds the logits to
    c * tanh(logits / c), as RecurrentGemma does.
    """

    def __init__(
        self,
        vocab: int,
        width: int,
        dtype: jnp.dtype,
        rngs: nnx.Rngs,
        *,
        scale: float | None = None,
        soft_cap: float | None = None,
    ):
        init = nnx.initializers.normal(width**-0.5)
        self.table = nnx.Param(init(rngs.params(), (vocab, width), jnp.float32))
        self.width, self.dtype = width, dtype
        self.scale = width**0.5 if scale is None else scale
        self.soft_cap = soft_cap

    def encode(self, input_ids: jax.Array) -> jax.Array:
        """[B, L] ids -> [B, L, width] activations (of unit scale at initialisation)."""
        return (jnp.take(self.table[...], input_ids, axis=0) * self.scale).astype(self.dtype)

    def decode(self, x: jax.Array) -> jax.Array:
        """[..., width] -> [..., vocab] float32 logits.

        The product runs in the activation dtype with float32 accumulation: under bfloat16 the
        read-out (a fifth of a 125M model's FLOPs) runs at the bf16 matmul rate, not at the
        float32 one; float32 models compute exactly as before.
        """
        table = self.table[...].astype(self.dtype)
        logits = jnp.matmul(x.astype(self.dtype), table.T, preferred_element_type=jnp.float32)
        if self.soft_cap is None:
            return logits
        return jnp.tanh(logits / self.soft_cap) * self.soft_cap
