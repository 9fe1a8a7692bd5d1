"""Train a small PyTorch causal LM (written here) on Birdie's adaptive objective mixture, in a
loop of our own; batches in birdie-rl's layout. Needs PyTorch (pip install -e ".[torch]").

    python examples/own_loop_torch.py --steps 300
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from birdie_ssm import Birdie
from birdie_ssm.birdie import birdie_rl_fields

SETTINGS = ["data.seq_len=128", "data.batch_size=8", "eval.schedule=every", "eval.every=25"]
HEADS = 4


class CausalLM(nn.Module):
    def __init__(self, vocab: int, length: int, width: int, depth: int) -> None:
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, width), nn.Embedding(length, width)
        layer = nn.TransformerEncoderLayer(width, HEADS, 4 * width, 0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seg, prompt = batch["segment_ids"], batch["attention_mask"] == 1
        # Attend within the example: causally, and both ways among the prompt's tokens.
        same = seg[:, :, None] == seg[:, None, :]
        causal = torch.ones(seg.shape[1], seg.shape[1], dtype=torch.bool).tril()
        allowed = same & (causal | (prompt[:, :, None] & prompt[:, None, :]))
        x = self.embed(batch["input_ids"]) + self.pos(batch["position_ids"])
        x = self.blocks(x, mask=~allowed.repeat_interleave(HEADS, dim=0))
        return self.out(self.norm(x))


def loss_sum(model: CausalLM, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    logits, labels = model(batch), batch["label_ids"]  # labels are pre-shifted, -100 = none
    total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
    return total, int((labels != -100).sum())


def tensors(batch) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in birdie_rl_fields(batch).items()}


@torch.no_grad()
def validation_losses(model: CausalLM, birdie: Birdie) -> dict[str, float]:
    losses = {}
    for arm, batches in birdie.validation_batches().items():
        sums = [loss_sum(model, tensors(b)) for b in batches]
        losses[arm] = float(sum(s for s, _ in sums)) / max(sum(n for _, n in sums), 1)
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

    torch.manual_seed(0)
    birdie = Birdie.from_config(args.config, [*SETTINGS, *args.set], steps=args.steps)
    length = birdie.validation_batches()[birdie.arm_names[0]][0].input_ids.shape[1]
    model = CausalLM(birdie.tokenizer.vocab_size, length, 64, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.eval()
    birdie.report(0, validation_losses(model, birdie))
    show(0, birdie)
    for step in range(1, args.steps + 1):
        model.train()
        total, count = loss_sum(model, tensors(birdie.next_batch()))
        loss = total / max(count, 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if birdie.should_evaluate(step):
            model.eval()
            birdie.report(step, validation_losses(model, birdie))
            show(step, birdie)
    print(f"last train loss {loss.item():.3f}")
    birdie.close()


if __name__ == "__main__":
    main()
