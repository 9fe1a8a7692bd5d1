"""The evaluation verbs of the command line: ``eval``, ``generate`` and ``experiment``."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdie_ssm.errors import BirdieError


def add_commands(verbs: argparse._SubParsersAction) -> None:
    """Add the evaluation verbs; each sets ``run`` to the function that carries it out."""
    from birdie_ssm.evaluation.prompts import FORMATS
    from birdie_ssm.tasks import registered_tasks

    tasks = registered_tasks()

    ev = verbs.add_parser("eval", help="evaluate a checkpoint on a retrieval task")
    ev.add_argument("tasks", nargs="+", metavar="TASK",
                    help=f"one or more of: {', '.join(tasks)}; or 'all'")  # fmt: skip
    ev.add_argument("--checkpoint", required=True, metavar="DIR", help="a run directory")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a task setting, e.g. --set book_sizes=[4,8] --set samples=16")  # fmt: skip
    ev.set_defaults(run=_eval)

    gen = verbs.add_parser("generate", help="continue a prompt with a trained model")
    gen.add_argument("--checkpoint", required=True, metavar="DIR", help="a run directory")
    gen.add_argument("--prompt", required=True, help="text to continue")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    gen.add_argument("--format", default="auto", choices=[f for f in FORMATS if f != "native"],
                     help="prompt layout (see birdie_ssm/evaluation/prompts.py)")  # fmt: skip
    gen.set_defaults(run=_generate)

    exp = verbs.add_parser("experiment", help="train several runs, evaluate them, write results.md")
    exp.add_argument("file", metavar="FILE", help="experiment YAML (see configs/experiments/)")
    exp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="a config override applied to every run, e.g. train.steps=20")  # fmt: skip
    exp.add_argument(
        "--output", metavar="DIR", help="where runs and results go (default: the file's)"
    )
    exp.add_argument("--seeds", type=_seeds, metavar="S,S,...",
                     help="seeds to run (replaces the file's 'seeds'), e.g. 0,1,2")  # fmt: skip
    exp.set_defaults(run=_experiment)


def _eval(args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.runner import EvalContext, run_task
    from birdie_ssm.tasks import registered_tasks, task_settings

    tasks = list(registered_tasks()) if args.tasks == ["all"] else args.tasks
    # Check every request before loading anything.
    settings = {task: task_settings(task, args.set) for task in tasks}
    ctx = EvalContext.load(args.checkpoint)
    for task in tasks:
        result = run_task(ctx, task, settings[task])
        print(result.table())
        print(f"written to {Path(args.checkpoint) / 'eval' / f'{task}.json'}\n")


def _generate(args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.prompts import choose_format, render
    from birdie_ssm.evaluation.runner import EvalContext
    from birdie_ssm.models.decode import generate

    if args.max_new_tokens < 1:
        raise BirdieError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    ctx = EvalContext.load(args.checkpoint)
    specials = ctx.tokenizer.specials
    fmt = choose_format(ctx.config, specials, None, args.format)
    prompt = render(fmt, specials, ctx.tokenizer.encode(args.prompt))
    out = generate(
        ctx.model, [prompt], args.max_new_tokens, prefix_len=fmt.prefix_len,
        temperature=args.temperature, stop_token=specials.eod,
    )[0]  # fmt: skip
    ended = out == specials.eod
    print(ctx.tokenizer.decode(out[: ended.argmax()] if ended.any() else out))


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct seeds like 0,1,2, got {text!r}")
    return seeds


def _experiment(args: argparse.Namespace) -> None:
    from birdie_ssm.experiments import run_experiment

    paths = run_experiment(args.file, overrides=args.set, output=args.output, seeds=args.seeds)
    for path in paths:
        print(path)
