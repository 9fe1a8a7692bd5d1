"""Data-side throughput and footprint: objectives from the token cache, the tokenizer and the
cache build, whole mixtures, and ``birdie-ssm train`` over a small and a large corpus.

1. Objectives (``--corpus FILE.jsonl``, else the standard library's docstrings): each objective
   alone through one worker's full pipeline, reading the token cache, with a 2048-token budget
   per example; tokens counted are input + target, per CPU second of the worker. The tokenizer
   is ``--tokenizer`` (a ``tokenizer.json``; ``byte`` for bytes), or a GPT-2-style byte-level BPE
   of vocabulary 8192 trained here on the corpus's first 20 MB. Beside them: the tokenizer's own
   encode rate (the limit of a cache build) and the cache's build rate.
2. Whole mixtures as a run makes them (quickstart and retrieval_gpu's Birdie mixture on the
   synthetic corpus), in-process and with ``--workers N``: row tokens per second.
3. ``--train SMALL.jsonl BIG.jsonl``: ``birdie-ssm train`` (2 workers, 5 steps) over each, its
   peak RSS (all its processes together) and time to the first training step, on a start that
   reuses the token cache; the first start, which builds the cache, is reported beside.
   ``benchmarks/make_corpus.py`` writes such corpora.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil

from birdie_ssm.config import DataConfig, ObjectiveEntry, load_config
from birdie_ssm.experiments.spec import load_spec
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import TokenCorpus, open_pipeline, token_corpus
from birdie_ssm.pipeline.inprocess import Pipeline
from birdie_ssm.tasks import registered_tasks
from birdie_ssm.text import Tokenizer, make_tokenizer
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.tokenizer import ByteTokenizer

BUDGET = 2048
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


def bpe_tokenizer(texts: list[str], path: Path) -> Path:
    """A GPT-2-style byte-level BPE (vocabulary 8192) trained on ``texts``, saved at ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    (path.parent / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return path


def read_texts(corpus: Path, mb: float) -> list[str]:
    """The first ``mb`` MB of a JSONL corpus's texts."""
    texts, size = [], 0
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            size += len(texts[-1])
            if size >= mb * 1e6:
                break
    return texts


def encode_rate(tokenizer: Tokenizer, texts: list[str]) -> tuple[float, float]:
    """(tokens per CPU second, per wall second) of the tokenizer's own batch encoding."""
    encode = getattr(tokenizer, "encode_batch", None) or (
        lambda b: [tokenizer.encode(t) for t in b]
    )
    start, cpu = time.perf_counter(), time.process_time()
    tokens = sum(len(ids) for ids in encode(texts))
    return tokens / (time.process_time() - cpu), tokens / (time.perf_counter() - start)


def rate(
    entry: ObjectiveEntry, corpus: TokenCorpus, tokenizer: Tokenizer, seconds: float
) -> tuple[float, float]:
    """Input + target tokens per CPU second and per wall second of a one-objective pipeline.

    CPU time is the fair measure on a shared machine: other processes steal wall time.
    """
    arms = expand_arms([entry], tokenizer.specials, tokenizer=tokenizer)
    # A row of BUDGET + 2 tokens gives each example exactly a BUDGET-token budget.
    pipe = Pipeline(corpus, tokenizer, arms, seq_len=BUDGET + 2, batch_size=8, seed=0)
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        batch = pipe.next_batch()
        segments = int(batch.segment_ids.max(axis=1).sum())
        tokens += int((batch.segment_ids > 0).sum()) - 2 * segments  # minus sep and eod
    return tokens / (time.process_time() - cpu), tokens / elapsed


def objective_corpus(
    args: argparse.Namespace, work: Path
) -> tuple[Tokenizer, TokenCorpus, str, list[str]]:
    """The tokenizer, the token corpus (cache built here), a description, and sample texts."""
    if args.corpus:
        corpus_file = Path(args.corpus)
    else:
        corpus_file = work / "stdlib.jsonl"
        corpus_file.write_text("".join(json.dumps({"text": d}) + "\n" for d in stdlib_docstrings()))
    sample = read_texts(corpus_file, 20)
    if args.tokenizer == "byte":
        tokenizer: Tokenizer = ByteTokenizer()
    else:
        path = Path(args.tokenizer) if args.tokenizer else None
        if path is None:
            (work / "bpe").mkdir(exist_ok=True)
            path = bpe_tokenizer(sample, work / "bpe" / "tokenizer.json")
        tokenizer = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=str(path)))
    data = DataConfig(corpus="files", files=[str(corpus_file)], cache_dir=str(work / "cache"))
    start = time.perf_counter()
    corpus = token_corpus(data, make_source(data), tokenizer)
    built = time.perf_counter() - start
    meta = corpus.sources[0].train_docs.meta
    size = corpus_file.stat().st_size
    about = (
        f"{corpus_file.name}: {size / 1e6:.0f} MB, {meta['documents']} documents, "
        f"{meta['tokens'] / 1e6:.1f}M tokens; token cache built in {built:.1f} s "
        f"({size / 1e6 / built:.2f} MB/s, {meta['tokens'] / built / 1e6:.2f}M tok/s wall)"
    )
    return tokenizer, corpus, about, sample


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
    pipe = open_pipeline(config.data, source, tokenizer, arms, weights / weights.sum())
    try:
        for _ in range(2 * max(workers, 1)):  # warm up (workers: spawned and running)
            pipe.next_batch()
        rows, start, cpu = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - start) < seconds:
            rows += pipe.next_batch().input_ids.size
        return rows / elapsed, rows / (time.process_time() - cpu)
    finally:
        pipe.close()


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def train_footprint(corpus: Path, tokenizer: str, cache: Path, run_dir: Path) -> dict[str, float]:
    """``birdie-ssm train`` (2 workers, 5 steps) over ``corpus``: peak RSS of all its processes,
    seconds to the first training step, and in all."""
    tok = ["data.tokenizer=byte"] if tokenizer == "byte" else [
        "data.tokenizer=hf", f"data.tokenizer_path={tokenizer}"]  # fmt: skip
    sets = [
        "data.corpus=files", f"data.files=[{corpus}]", f"data.cache_dir={cache}",
        "data.workers=2", "train.steps=5", "train.log_every=1", "train.progress=false",
        *tok,
    ]  # fmt: skip
    command = [sys.executable, "-m", "birdie_ssm.cli", "train", "--run-dir", str(run_dir),
               *(x for s in sets for x in ("--set", s))]  # fmt: skip
    shutil.rmtree(run_dir, ignore_errors=True)  # no earlier metrics.jsonl to mistake for ours
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, first = 0, None
    metrics = run_dir / "metrics.jsonl"
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        if first is None and metrics.is_file() and '"train"' in metrics.read_text():
            first = time.perf_counter() - start
        time.sleep(0.05)
    if process.returncode:
        raise RuntimeError(f"train over {corpus} failed: {process.stderr.read().decode()[-2000:]}")
    return {"rss_mb": peak / 1e6, "first_step_s": first or float("nan"),
            "total_s": time.perf_counter() - start}  # fmt: skip


def train_section(small: Path, big: Path, tokenizer: str, work: Path) -> None:
    """The footprint of ``train`` over the small and the big corpus, side by side."""
    print(f"\nbirdie-ssm train, 2 workers, 5 steps, tokenizer {tokenizer}:")
    rows = {}
    for corpus in (small, big):
        cache = work / f"train-cache-{corpus.stem}"
        shutil.rmtree(cache, ignore_errors=True)
        cold = train_footprint(corpus, tokenizer, cache, work / "run")
        built = sum(json.loads(m.read_text())["build_seconds"] for m in cache.glob("*/meta.json"))
        warm = train_footprint(corpus, tokenizer, cache, work / "run")
        rows[corpus] = warm
        size = corpus.stat().st_size / 1e6
        print(
            f"  {corpus.name} ({size:,.0f} MB): peak RSS {warm['rss_mb']:,.0f} MB, first step "
            f"{warm['first_step_s']:.1f} s, {warm['total_s']:.0f} s in all (token cache reused)"
            f" | first start: token cache built in {built:.0f} s ({size / built:.2f} MB/s), "
            f"first step {cold['first_step_s']:.1f} s, peak RSS {cold['rss_mb']:,.0f} MB"
        )
    a, b = rows[small], rows[big]
    print(
        f"  big / small: peak RSS {b['rss_mb'] / a['rss_mb']:.2f}x (target <= 1.2x), time to "
        f"first step {b['first_step_s'] / a['first_step_s']:.2f}x (target <= 1.5x)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", help="JSONL corpus for the objectives (benchmarks/make_corpus.py)"
    )
    parser.add_argument("--tokenizer", help="tokenizer.json, or byte (default: a BPE trained here)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per objective")
    parser.add_argument("--only", nargs="*", default=None, help="objectives to run (labels)")
    parser.add_argument(
        "--workers", type=int, default=0, help="also run the mixtures with this many workers"
    )
    parser.add_argument("--train", nargs=2, metavar=("SMALL", "BIG"), help="train footprints")
    parser.add_argument(
        "--train-tokenizer", help="tokenizer.json or byte for --train (default: --tokenizer's)"
    )
    parser.add_argument("--no-mixtures", action="store_true", help="skip the mixtures section")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="birdie-bench-data-") as tmp:
        work = Path(tmp)
        tokenizer, corpus, about, sample = objective_corpus(args, work)
        print(f"corpus {about}")
        cpu, wall = encode_rate(tokenizer, sample[:2000])
        print(
            f"tokenizer (vocab {tokenizer.specials.base_size}) encodes {cpu / 1e6:.2f}M tok per "
            f"CPU second ({wall / 1e6:.2f}M wall): the limit of a cache build"
        )
        print("objectives from the cache: input + target tok/s per CPU second of one worker")
        print(f"{'objective':<30} {'tok/s':>9} {'wall':>8}")
        for label, entry in CASES.items():
            if args.only and label not in args.only:
                continue
            ours, wall = rate(entry, corpus, tokenizer, args.seconds)
            print(f"{label:<30} {ours / 1e6:8.2f}M {wall / 1e6:7.2f}M")
        if not args.no_mixtures:
            print(
                "\nmixtures end to end (row tokens/s: batch x seq_len, as the trainer takes them)"
            )
            for label, overrides in mixtures().items():
                if args.only and label not in args.only:
                    continue
                wall, cpu = mixture_rate(overrides, 0, args.seconds)
                line = f"{label:<22} in-process {cpu / 1e6:6.2f}M per CPU second "
                line += f"({wall / 1e6:.2f}M wall)"
                if args.workers:
                    pooled, _ = mixture_rate(overrides, args.workers, args.seconds)
                    line += f" | {args.workers} workers {pooled / 1e6:6.2f}M wall"
                print(line)
        if args.train:
            tok = args.train_tokenizer or args.tokenizer or str(work / "bpe" / "tokenizer.json")
            train_section(Path(args.train[0]), Path(args.train[1]), tok, work)


if __name__ == "__main__":
    main()
