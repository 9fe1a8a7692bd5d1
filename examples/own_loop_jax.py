"""Train a small Transformer written here in Flax NNX (not birdie-ssm's model) on Birdie's
adaptive objective mixture, in a loop of our own.

    python examples/own_loop_jax.py --steps 300
"""

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from birdie_ssm import Birdie

SETTINGS = ["data.seq_len=128", "data.batch_size=8", "eval.schedule=every", "eval.every=25"]


class Block(nnx.Module):
    def __init__(self, width: int, heads: int, rngs: nnx.Rngs) -> None:
        self.norm1, self.norm2 = nnx.LayerNorm(width, rngs=rngs), nnx.LayerNorm(width, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
        self.up, self.down = (
            nnx.Linear(width, 4 * width, rngs=rngs),
            nnx.Linear(4 * width, width, rngs=rngs),
        )

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.down(jax.nn.gelu(self.up(self.norm2(x))))


class Transformer(nnx.Module):
    def __init__(self, vocab: int, length: int, width: int, depth: int, rngs: nnx.Rngs) -> None:
        self.embed, self.pos = (
            nnx.Embed(vocab, width, rngs=rngs),
            nnx.Embed(length, width, rngs=rngs),
        )
        self.blocks = nnx.List([Block(width, 4, rngs) for _ in range(depth)])
        self.norm, self.out = nnx.LayerNorm(width, rngs=rngs), nnx.Linear(width, vocab, rngs=rngs)

    def __call__(self, batch: dict[str, jax.Array]) -> jax.Array:
        seg, prefix = batch["segment_ids"], batch["prefix_mask"]
        # Attend within the example: causally, and both ways among the prefix's tokens.
        same = seg[:, :, None] == seg[:, None, :]
        causal = jnp.tril(jnp.ones((seg.shape[1],) * 2, bool))
        mask = same & (causal | (prefix[:, :, None] & prefix[:, None, :]))
        x = self.embed(batch["input_ids"]) + self.pos(batch["positions"])
        for block in self.blocks:
            x = block(x, mask[:, None])
        return self.out(self.norm(x))


def token_losses(model: Transformer, batch: dict[str, jax.Array]) -> jax.Array:
    logits = model(batch)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["target_ids"])


@nnx.jit
def train_step(model: Transformer, optimizer: nnx.Optimizer, batch: dict) -> jax.Array:
    def loss_fn(model):
        mask = batch["loss_mask"]
        return jnp.sum(token_losses(model, batch) * mask) / jnp.maximum(mask.sum(), 1)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def loss_sum(model: Transformer, batch: dict) -> tuple[jax.Array, jax.Array]:
    return jnp.sum(token_losses(model, batch) * batch["loss_mask"]), batch["loss_mask"].sum()


def validation_losses(model: Transformer, birdie: Birdie) -> dict[str, float]:
    losses = {}
    for arm, batches in birdie.validation_batches().items():
        sums = [loss_sum(model, b.as_dict()) for b in batches]
        losses[arm] = float(sum(s for s, _ in sums) / max(sum(n for _, n in sums), 1))
    return losses


def show(step: int, birdie: Birdie) -> None:
    record = birdie.history[-1]
    print(f"step {step}: loss " + " ".join(f"{a}={v:.3f}" for a, v in record["val_loss"].items()))
    print("  mixture " + " ".join(f"{a}={p:.2f}" for a, p in record["mixture"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--config", help="a birdie-ssm run config (default: the quickstart's)")
    parser.add_argument("--set", action="append", default=[], help="key=value override")
    args = parser.parse_args()

    birdie = Birdie.from_config(args.config, [*SETTINGS, *args.set], steps=args.steps)
    length = birdie.validation_batches()[birdie.arm_names[0]][0].input_ids.shape[1]
    model = Transformer(birdie.tokenizer.vocab_size, length, 64, 2, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
    birdie.report(0, validation_losses(model, birdie))
    show(0, birdie)
    for step in range(1, args.steps + 1):
        # JAX dispatches the step asynchronously: the next batch is packed while it runs.
        loss = train_step(model, optimizer, birdie.next_batch().as_dict())
        if birdie.should_evaluate(step):
            birdie.report(step, validation_losses(model, birdie))
            show(step, birdie)
    print(f"last train loss {float(loss):.3f}")
    birdie.close()


if __name__ == "__main__":
    main()
