"""Data-side throughput: tokens/s per objective from one worker on natural text.

Natural text = the docstrings of the Python standard library (on every machine). Each objective
runs alone through the full single-worker pipeline (byte tokenizer, objective, packing) with a
2048-token budget per example; tokens counted are input + target. Every task's ``task_format``
arm (its default settings) is measured too. Printed beside each rate: the ratio to the public
Birdie package's single-process rate on this machine type (target >= 2x) and to the tokens/s the
quickstart train step consumes (target >= 20x; pass --train-rate, since the train step is
measured separately by `birdie-ssm bench train`).

Then whole mixtures end to end, as a run makes them (its corpus, tokenizer, rows and batch):
the quickstart's and retrieval_gpu's Birdie mixture, in-process, and with ``--workers N`` also
through N worker processes. These count row tokens (batch x seq_len, padding included), as the
trainer consumes them and as `benchmarks/train.py` reports its "pipeline alone" figure.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from birdie_ssm.config import ObjectiveEntry, load_config
from birdie_ssm.experiments.spec import load_spec
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import open_pipeline
from birdie_ssm.pipeline.inprocess import Pipeline
from birdie_ssm.tasks import registered_tasks
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.tokenizer import ByteTokenizer

BUDGET = 2048
# The public Birdie package, one process, same set-up, on a 2-core CPU (tokens/s).
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
    **{
        f"task_format:{task}": ObjectiveEntry(name="task_format", params={"task": task})
        for task in registered_tasks()
    },
}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
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


def mixtures() -> dict[str, list[str]]:
    """Config overrides (on the quickstart) of the mixtures measured end to end."""
    spec = load_spec(CONFIGS / "experiments" / "retrieval_gpu.yaml")
    (birdie,) = [r for r in spec.runs if r.name == "gated_birdie"]
    data = {k: v for k, v in spec.shared.items() if k.startswith("data.") and k != "data.workers"}
    return {
        "quickstart": [],
        "retrieval_gpu Birdie": [
            *(f"{k}={json.dumps(v)}" for k, v in data.items()),
            f"objectives.mixture={json.dumps(birdie.set['objectives.mixture'])}",
        ],
    }


def mixture_rate(overrides: list[str], workers: int, seconds: float) -> tuple[float, float]:
    """(row tokens per wall second, per CPU second of this process) of a run's pipeline."""
    config = load_config(None, [*overrides, f"data.workers={workers}"])
    tokenizer, source = make_tokenizer(config.data), make_source(config.data)
    arms = expand_arms(config.objectives.mixture, tokenizer.specials, tokenizer=tokenizer)
    weights = np.array([a.weight for a in arms])
    pipe = open_pipeline(config, source, tokenizer, arms, weights / weights.sum())
    try:
        for _ in range(2 * max(workers, 1)):  # warm up (workers: spawned and running)
            pipe.next_batch()
        rows, start, cpu = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - start) < seconds:
            rows += pipe.next_batch().input_ids.size
        return rows / elapsed, rows / (time.process_time() - cpu)
    finally:
        pipe.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train-rate",
        type=float,
        default=5000.0,
        help="tokens/s the quickstart train step consumes (default 5000)",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per objective")
    parser.add_argument("--only", nargs="*", default=None, help="objectives to run (labels)")
    parser.add_argument(
        "--workers", type=int, default=0, help="also run the mixtures with this many workers"
    )
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
        f"{'objective':<30} {'tok/s':>9} {'wall':>8} {'Birdie':>8} {'x Birdie':>9} {'x train':>8}"
    )
    for label, entry in CASES.items():
        if args.only and label not in args.only:
            continue
        ours, wall = rate(entry, docs, args.seconds)
        ref = BIRDIE.get(label)
        vs_ref = f"{ours / ref:.2f}x" if ref else "-"
        ref_text = f"{ref / 1e6:.2f}M" if ref else "-"
        print(
            f"{label:<30} {ours / 1e6:8.2f}M {wall / 1e6:7.2f}M {ref_text:>8} {vs_ref:>9} "
            f"{ours / args.train_rate:7.0f}x"
        )
    print("\nmixtures end to end (row tokens/s: batch x seq_len, as the trainer consumes them)")
    for label, overrides in mixtures().items():
        if args.only and label not in args.only:
            continue
        wall, cpu = mixture_rate(overrides, 0, args.seconds)
        line = f"{label:<22} in-process {cpu / 1e6:6.2f}M per CPU second ({wall / 1e6:.2f}M wall)"
        if args.workers:
            pooled, _ = mixture_rate(overrides, args.workers, args.seconds)
            line += f" | {args.workers} workers {pooled / 1e6:6.2f}M wall"
        print(line)


if __name__ == "__main__":
    main()
