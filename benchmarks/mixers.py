"""Every recurrent mixer side by side: training speed and memory against the gated SSM, and
decoding time per token at a long and a short context.

All mixers run at one width and depth (bidirectional layers alternating, half of every row a
prefix). Training: tokens/s of an AdamW step, as a ratio to the gated SSM's, measured in turn in
one process, with the step's memory from XLA's compiled memory analysis (arguments, outputs and
temporaries: the activations kept for the backward pass are among the temporaries). Decoding:
ms per token after a prefill of each context, and the ratio long / short (a constant state
gives about 1; the target is <= 1.1). On a GPU it measures the same there.

    python benchmarks/mixers.py            # width 128, 4 blocks, length 512; contexts 1k, 16k
    python benchmarks/mixers.py --quick    # smoke run: small shapes, one timed step
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models import build_model, count_params

VOCAB = 512
MIXERS = ("gated", "rglru", "mamba", "s4d", "s5", "lru")
HYBRID = "mamba+attention (RRRA)"


def _decode_timer():
    """benchmarks/model.py's decode timing (prefill a context, then time single-token steps)."""
    spec = importlib.util.spec_from_file_location(
        "model_bench", Path(__file__).with_name("model.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.decode_seconds_per_token


def configs(width: int, depth: int) -> dict[str, ModelConfig]:
    """The mixers at one width and depth, their own default parameters, and a Mamba-attention
    hybrid (one attention block in four: at this depth a 7 : 1 pattern would hold none)."""
    common = {"width": width, "depth": depth, "bidirectional": "alternate", "scan_impl": "auto"}
    out = {name: ModelConfig(mixer=name, **common) for name in MIXERS}
    out[HYBRID] = ModelConfig(
        mixer="mamba",
        block_pattern="RRRA",
        mixers={"attention": {"num_heads": max(1, width // 64)}},
        **common,
    )
    return out


def train_step_figures(
    config: ModelConfig, length: int, batch: int, steps: int
) -> tuple[float, int]:
    """(tokens/s over ``steps`` timed AdamW steps, bytes the compiled step needs)."""
    model = build_model(config, VOCAB, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)

    def step(params, opt_state, ids, prefix):
        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(ids[:, :-1], prefix)
            return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    ids = jax.random.randint(jax.random.key(0), (batch, length + 1), 0, VOCAB, jnp.int32)
    prefix = jnp.broadcast_to(jnp.arange(length) < length // 2, (batch, length))
    compiled = jax.jit(step).lower(params, opt_state, ids, prefix).compile()
    memory = compiled.memory_analysis()
    used = memory.argument_size_in_bytes + memory.output_size_in_bytes
    used += memory.temp_size_in_bytes - memory.alias_size_in_bytes
    params, opt_state, loss = compiled(params, opt_state, ids, prefix)  # warm
    loss.block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
        params, opt_state, loss = compiled(params, opt_state, ids, prefix)
    loss.block_until_ready()
    return batch * length * steps / (time.perf_counter() - start), int(used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small shapes")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per mixer")
    args = parser.parse_args()
    width, depth = (64, 2) if args.quick else (128, 4)
    length, batch = (256, 2) if args.quick else (512, 4)
    contexts = [256, 1024] if args.quick else [1024, 16384]
    steps = args.steps or (1 if args.quick else 3)
    decode_tokens = 16 if args.quick else 128
    print(
        f"backend {jax.default_backend()}: width {width}, {depth} blocks, vocab {VOCAB}, "
        f"bidirectional alternate, scan impl 'auto'"
    )
    models = configs(width, depth)

    print(f"\ntraining (AdamW step, batch {batch} x {length} tokens, {steps} timed steps)")
    print(f"{'mixer':28s} {'params':>8} {'tokens/s':>9} {'/ gated':>8} {'step memory':>12}")
    gated = None
    for name, config in models.items():
        model = nnx.eval_shape(lambda c=config: build_model(c, VOCAB, nnx.Rngs(0)))
        speed, used = train_step_figures(config, length, batch, steps)
        gated = gated or speed
        print(
            f"{name:28s} {count_params(model) / 1e6:7.2f}M {speed:9.0f} {speed / gated:8.2f} "
            f"{used / 2**20:9.1f} MiB",
            flush=True,
        )

    decode = _decode_timer()
    print(f"\ndecode ms/token (batch 1, {decode_tokens} tokens after a prefill of each context)")
    print(f"{'mixer':28s} " + " ".join(f"{c:>8}" for c in contexts) + f" {'ratio':>7}")
    for name, config in models.items():
        per_token = decode(config, contexts, decode_tokens)
        cells = " ".join(f"{1e3 * t:8.3f}" for t in per_token)
        print(f"{name:28s} {cells} {per_token[-1] / per_token[0]:7.2f}", flush=True)


if __name__ == "__main__":
    main()
