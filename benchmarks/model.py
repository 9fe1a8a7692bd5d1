"""Training and decoding speed of the SSMs against the Transformer baseline, side by side on CPU.

Shape: width 256, 4 blocks, vocabulary 512, batch 8 (batch 2 at 8192 unless
--full-batch: one row already saturates the CPU). Prints training tokens/s at each length, the
ratio of the SSMs to the Transformer and to RecurrentGemma's JAX Hawk (its figures,
measured on a 2-core CPU like this one), and decode time per token at two contexts; the hybrid
(RG-LRU, RG-LRU, attention) row shows what a few attention blocks cost.

    python benchmarks/model.py            # lengths 512, 2048, 8192; contexts 1k and 16k
    python benchmarks/model.py --quick    # smoke run: short lengths, one timed step
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models import build_model, count_params

VOCAB, WIDTH, DEPTH, BATCH = 512, 256, 4, 8
# RecurrentGemma's JAX Hawk, best setting, same shape, on a 2-core CPU (tokens/s).
RECURRENTGEMMA_HAWK = {512: 2400.0, 2048: 2100.0}
MODELS = {
    "gated SSM": ModelConfig(mixer="gated", bidirectional="alternate"),
    "Hawk (RG-LRU)": ModelConfig(mixer="rglru", bidirectional="alternate"),
    "Transformer": ModelConfig(arch="transformer", mixers={"attention": {"num_heads": 4}}),
    # Griffin's layout: two RG-LRU blocks, then one attention block, tiled over depth.
    "hybrid (RRA)": ModelConfig(
        mixer="rglru",
        block_pattern="RRA",
        bidirectional="alternate",
        mixers={"attention": {"num_heads": 4}},
    ),
}


def _config(base: ModelConfig) -> ModelConfig:
    return base.model_copy(update={"width": WIDTH, "depth": DEPTH, "scan_impl": "auto"})


def _batch(length: int, batch: int) -> tuple[jax.Array, jax.Array]:
    ids = jax.random.randint(jax.random.key(0), (batch, length + 1), 0, VOCAB, jnp.int32)
    # The first half of every row is a prefix, so bidirectional layers do their full work.
    prefix = jnp.broadcast_to(jnp.arange(length) < length // 2, (batch, length))
    return ids, prefix


def train_tokens_per_second(config: ModelConfig, length: int, batch: int, steps: int) -> float:
    """Mean training throughput over ``steps`` timed AdamW steps (compiled ahead of time)."""
    model = build_model(config, VOCAB, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, ids, prefix):
        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(ids[:, :-1], prefix)
            return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    ids, prefix = _batch(length, batch)
    step = step.lower(params, opt_state, ids, prefix).compile()
    start = time.perf_counter()
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state, ids, prefix)
    loss.block_until_ready()
    return batch * length * steps / (time.perf_counter() - start)


def decode_seconds_per_token(
    config: ModelConfig, contexts: list[int], tokens: int, repeats: int = 5
) -> list[float]:
    """Per context: prefill it (batch 1), then time ``tokens`` single-token steps.

    Contexts are timed in alternation and the best of ``repeats`` kept, so load on the shared
    machine hits every context alike.
    """
    model = build_model(config, VOCAB, nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    @jax.jit
    def prefill(state, ids):
        model = nnx.merge(graphdef, state)
        # As in ``generate``: a KV cache holds the prompt plus the tokens to come.
        logits, cache = model.prefill(ids, jnp.ones(ids.shape, bool), None, ids.shape[1] + tokens)
        return jnp.argmax(logits, -1).astype(jnp.int32), cache

    @jax.jit
    def decode(state, token, cache):
        model = nnx.merge(graphdef, state)

        def body(_, carry):
            token, cache = carry
            logits, cache = model.step(token, cache)
            return jnp.argmax(logits, -1).astype(jnp.int32), cache

        return jax.lax.fori_loop(0, tokens, body, (token, cache))[0]

    starts = []
    for context in contexts:
        ids = jax.random.randint(jax.random.key(1), (1, context), 0, VOCAB, jnp.int32)
        token, cache = prefill(state, ids)
        decode(state, token, cache).block_until_ready()
        starts.append((token, cache))
    best = [float("inf")] * len(contexts)
    for _ in range(repeats):
        for i, (token, cache) in enumerate(starts):
            start = time.perf_counter()
            decode(state, token, cache).block_until_ready()
            best[i] = min(best[i], time.perf_counter() - start)
    return [t / tokens for t in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: lengths 128/512")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per cell")
    parser.add_argument("--full-batch", action="store_true", help="batch 8 at 8192 too (slow)")
    args = parser.parse_args()
    lengths = [128, 512] if args.quick else [512, 2048, 8192]
    contexts = [256, 1024] if args.quick else [1024, 16384]
    decode_tokens = 32 if args.quick else 256

    print(
        f"backend {jax.default_backend()}, {jax.device_count()} device(s); width {WIDTH}, "
        f"{DEPTH} blocks, vocab {VOCAB}, batch {BATCH}, scan impl 'auto'"
    )
    configs = {name: _config(c) for name, c in MODELS.items()}
    for name, config in configs.items():
        model = nnx.eval_shape(lambda c=config: build_model(c, VOCAB, nnx.Rngs(0)))
        print(f"  {name:14s} {count_params(model) / 1e6:.2f}M parameters")

    print("\ntraining tokens/s (AdamW step, forward + backward)")
    header = f"{'length':>7} " + " ".join(f"{n:>14}" for n in configs)
    print(header + f" {'gated/Tr':>9} {'Hawk/Tr':>8} {'gated/RG':>9} {'Hawk/RG':>8}")
    for length in lengths:
        steps = args.steps or (1 if args.quick or length > 2048 else 2)
        # A row of 8192 tokens already saturates the CPU, so batch 2 measures the same tokens/s
        # at a quarter of the run time.
        batch = 2 if length > 2048 and not args.full_batch else BATCH
        speed = {n: train_tokens_per_second(c, length, batch, steps) for n, c in configs.items()}
        gated, hawk, tr = speed["gated SSM"], speed["Hawk (RG-LRU)"], speed["Transformer"]
        rg = RECURRENTGEMMA_HAWK.get(length)
        rg_cols = f"{gated / rg:9.2f} {hawk / rg:8.2f}" if rg else f"{'-':>9} {'-':>8}"
        cells = " ".join(f"{speed[n]:14.0f}" for n in configs)
        note = f"  (batch {batch})" if batch != BATCH else ""
        print(f"{length:7d} {cells} {gated / tr:9.2f} {hawk / tr:8.2f} {rg_cols}{note}", flush=True)
    print(
        "RG = RecurrentGemma JAX Hawk: "
        + ", ".join(f"{v:.0f} tok/s at {k}" for k, v in RECURRENTGEMMA_HAWK.items())
    )

    print(f"\ndecode ms/token (batch 1, {decode_tokens} tokens after a bidirectional prefill)")
    print(f"{'model':14s} " + " ".join(f"{c:>8}" for c in contexts) + f" {'ratio':>7}")
    for name, config in configs.items():
        per_token = decode_seconds_per_token(config, contexts, decode_tokens)
        cells = " ".join(f"{1e3 * t:8.3f}" for t in per_token)
        print(f"{name:14s} {cells} {per_token[-1] / per_token[0]:7.2f}", flush=True)
    print("GPU model FLOPs utilisation: not measured here (CPU only).")


if __name__ == "__main__":
    main()
