"""Data-side throughput: tokens/s per objective from one worker on natural text.

Natural text = the docstrings of the Python standard library (on every machine). Each objective
runs alone through the full single-worker pipeline (byte tokenizer, objective, packing) with a
2048-token budget per example; tokens counted are input + target. Printed beside each rate: the
ratio to the public Birdie package's single-process rate on this machine type (target >= 2x)
and to the tokens/s the quickstart train step consumes (target >= 20x; pass --train-rate, since
the train step is measured separately by `birdie-ssm bench train`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import warnings

from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline.inprocess import Pipeline
from birdie_ssm.text.tokenizer import ByteTokenizer

BUDGET = 2048
# Public Birdie package, one process, same set-up (tokens/s, from the issue).
BIRDIE = {
    "infilling": 0.34e6,
    "autoencoding": 0.78e6,
    "autoencoding+shuffle": 0.64e6,
    "selective_copying": 1.6e6,
    "deshuffling": 1.9e6,
    "prefix_lm": 2.4e6,
    "copying": 3.0e6,
    "next_token": 3.3e6,
}
CASES = {
    "next_token": ObjectiveEntry(name="next_token"),
    "prefix_lm": ObjectiveEntry(name="prefix_lm"),
    "infilling": ObjectiveEntry(name="infilling"),
    "copying": ObjectiveEntry(name="copying"),
    "deshuffling": ObjectiveEntry(name="deshuffling"),
    "autoencoding": ObjectiveEntry(name="autoencoding"),
    "autoencoding+shuffle": ObjectiveEntry(name="autoencoding", params={"shuffle": True}),
    "selective_copying": ObjectiveEntry(name="selective_copying"),
    "associative_recall": ObjectiveEntry(name="associative_recall"),
}
SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data"}


def stdlib_docstrings() -> list[str]:
    """Docstrings of standard-library modules and their public members."""
    docs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names - SKIP):
            if name.startswith("_"):
                continue
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific modules are missing here and there
                continue
            for obj in [module, *vars(module).values()]:
                doc = inspect.getdoc(obj) if callable(obj) or obj is module else None
                if doc and doc.strip():
                    docs.append(doc)
    return list(dict.fromkeys(docs))


def rate(entry: ObjectiveEntry, docs: list[str], seconds: float) -> tuple[float, float]:
    """Input + target tokens per CPU second and per wall second of a one-objective pipeline.

    CPU time is the fair measure on a shared machine: other processes steal wall time.
    """
    tokenizer = ByteTokenizer()
    arms = expand_arms([entry], tokenizer.specials)
    # A row of BUDGET + 2 tokens gives each example exactly a BUDGET-token budget.
    pipe = Pipeline(docs.__getitem__, tokenizer, arms, seq_len=BUDGET + 2, batch_size=8, seed=0)
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        batch = pipe.next_batch()
        segments = int(batch.segment_ids.max(axis=1).sum())
        tokens += int((batch.segment_ids > 0).sum()) - 2 * segments  # minus sep and eod
        if pipe.cursor >= len(docs) - 1000:
            pipe.cursor = 0
    return tokens / (time.process_time() - cpu), tokens / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train-rate",
        type=float,
        default=5000.0,
        help="tokens/s the quickstart train step consumes (default 5000)",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per objective")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    docs = stdlib_docstrings()
    print(
        f"natural text: {len(docs)} stdlib docstrings, {sum(map(len, docs)) / 1e6:.1f} MB; "
        f"byte tokenizer; budget {BUDGET}; one worker"
    )
    print(
        f"train step consumption: {args.train_rate:,.0f} tok/s "
        "(--train-rate; measure it with `birdie-ssm bench train`)"
    )
    print("tok/s per CPU second of the worker (wall-clock rate beside it); ratios use CPU time")
    print(
        f"{'objective':<22} {'tok/s':>9} {'wall':>8} {'Birdie':>8} {'x Birdie':>9} {'x train':>8}"
    )
    for label, entry in CASES.items():
        ours, wall = rate(entry, docs, args.seconds)
        ref = BIRDIE.get(label)
        vs_ref = f"{ours / ref:.2f}x" if ref else "-"
        ref_text = f"{ref / 1e6:.2f}M" if ref else "-"
        print(
            f"{label:<22} {ours / 1e6:8.2f}M {wall / 1e6:7.2f}M {ref_text:>8} {vs_ref:>9} "
            f"{ours / args.train_rate:7.0f}x"
        )


if __name__ == "__main__":
    main()
