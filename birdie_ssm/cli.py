"""The ``birdie-ssm`` command line: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import errno
import json
import os
import runpy
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdie_ssm.errors import BirdieError, check_writable

if TYPE_CHECKING:
    from birdie_ssm.config import Config

BENCHMARKS = ("scan", "data", "train", "model", "controller", "memory", "gpu", "own_loop")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="birdie-ssm",
        description="Pretrain state space LMs with a dynamic mixture of training objectives.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a model (the quickstart when no --config)")
    train.add_argument("--config", help="YAML config file (default: the quickstart)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=100 (repeatable)",
    )
    train.add_argument("--run-dir", help="where the run is written (default: runs/<name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    train.add_argument("--resume-from", type=int, metavar="STEP",
                       help="continue from checkpoint STEP (e.g. the intact one before a damaged "
                       "checkpoint); once it has restored, later checkpoints are "
                       "removed")  # fmt: skip
    train.add_argument("--allow-lr-change", action="store_true",
                       help="resume even where --set train.steps moves the learning rate of the "
                       "steps to come (see train.schedule)")  # fmt: skip
    train.add_argument("--overwrite", action="store_true", help="replace an existing run")
    train.add_argument(
        "--init-from",
        metavar="DIR",
        help="start from the parameters of another run or an export (fine-tuning)",
    )

    objectives = verbs.add_parser("objectives", help="list registered objectives and parameters")
    objectives.add_argument("--config", help="also list objectives from its objectives.modules")
    objectives.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="import a module that registers objectives (repeatable)",
    )

    report = verbs.add_parser("report", help="draw losses and the mixture over time as PNG")
    report.add_argument("run_dir")

    _add_eval_verbs(verbs)
    _add_weight_verbs(verbs)

    bench = verbs.add_parser("bench", help="run a benchmark from benchmarks/")
    bench.add_argument("which", choices=BENCHMARKS)
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    return parser


def _train_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's config and directory. A new run reads --config (or the quickstart) and is
    named after its file or --run-dir unless the file names it; a resumed run reads its own
    config.yaml, and --set may change only the keys in RESUME_SAFE."""
    from birdie_ssm.config import RESUME_SAFE, load_config, load_raw, resolve_paths, resume_changes
    from birdie_ssm.train import rundir

    if args.resume:
        if args.config:
            raise BirdieError("--resume continues a run with its own config.yaml; drop --config "
                              f"(--set may change: {', '.join(RESUME_SAFE)})")  # fmt: skip
        run_dir = Path(args.run_dir or Path("runs") / "quickstart")
        if not rundir.is_run(run_dir):
            raise BirdieError(f"--resume: '{run_dir}' holds no checkpoint to resume (a run "
                              "directory has config.yaml and checkpoints/)")  # fmt: skip
        old = rundir.read_config(run_dir)
        config = rundir.read_config(run_dir, args.set)
        unsafe = resume_changes(old, config)
        if unsafe:
            raise BirdieError(f"--resume cannot change '{unsafe[0]}' (it would change what the "
                              f"run learns); on resume --set may change: "
                              f"{', '.join(RESUME_SAFE)}")  # fmt: skip
        return config, run_dir
    raw_name = load_raw(args.config).get("name") if args.config else None
    config = resolve_paths(load_config(args.config, args.set))  # validate before the disk
    named = raw_name is not None or any(a.strip().startswith("name=") for a in args.set)
    if not named and (args.config or args.run_dir):
        config = config.model_copy(
            update={"name": Path(args.config).stem if args.config else Path(args.run_dir).name}
        )
    return config, Path(args.run_dir or Path("runs") / config.name)


def _train(args: argparse.Namespace) -> None:
    from birdie_ssm.train import rundir

    args.resume = args.resume or args.resume_from is not None
    config, run_dir = _train_config(args)
    existing = run_dir.exists() and any(run_dir.iterdir())
    if existing and not (args.resume or args.overwrite):
        raise BirdieError(
            f"run directory '{run_dir}' already holds a run; pass --resume to continue it, "
            "--overwrite to start again, or choose another --run-dir"
        )
    if args.resume and args.overwrite:
        raise BirdieError("--resume and --overwrite exclude each other")
    check_writable(run_dir, "run directory")

    from birdie_ssm.train.trainer import Trainer

    created = not run_dir.exists()
    if args.overwrite and existing:
        shutil.rmtree(run_dir)
    try:
        trainer = Trainer(config, run_dir, resume=args.resume, resume_step=args.resume_from,
                          init_from=args.init_from,
                          allow_lr_change=args.allow_lr_change)  # fmt: skip
    except BaseException:
        if not args.resume:
            _remove_new_run(run_dir, created)
        raise
    if trainer.removed_checkpoints:
        print(f"removed checkpoints {', '.join(map(str, trainer.removed_checkpoints))} to "
              f"resume from {trainer.step}", flush=True)  # fmt: skip
    if trainer.lr_change is not None:
        before, after = trainer.lr_change
        print(f"note: the learning rate at step {trainer.step} moves from {before:.3g} to "
              f"{after:.3g} (--allow-lr-change)", flush=True)  # fmt: skip
    if args.resume and trainer.step >= config.train.steps:
        trainer.close()
        print(f"run '{config.name}' in {run_dir} is already trained to step {trainer.step} "
              f"(train.steps {config.train.steps}): nothing to do", flush=True)  # fmt: skip
        return
    if args.resume:
        rundir.write_config(config, run_dir)  # record what --set changed
        print(f"resuming run '{config.name}' in {run_dir} from step {trainer.step}", flush=True)
    print(
        f"run '{config.name}' in {run_dir}: {trainer.run.num_params:,} parameters, "
        f"{len(trainer.arm_names)} arms, {config.train.steps} steps",
        flush=True,
    )
    start = time.perf_counter()
    try:
        losses = trainer.fit()
    except BaseException:
        trainer.close()
        # A new run that failed before its first checkpoint has nothing to resume: leaving it
        # would only make the next try say "already holds a run".
        if not args.resume and trainer.checkpointer.latest_step() is None:
            _remove_new_run(run_dir, created)
        raise
    trainer.close()
    _print_losses(trainer.arm_names, losses, _first_val_losses(run_dir))
    print(f"trained to step {trainer.step} in {time.perf_counter() - start:.0f} s")
    _report(run_dir, quiet=True)
    print(f"checkpoint, metrics.jsonl and plots in {run_dir}")


def _remove_new_run(run_dir: Path, created: bool) -> None:
    """Leave nothing of a new run that failed: its directory, or (one that was there, empty)
    its contents."""
    shutil.rmtree(run_dir, ignore_errors=True)
    if not created:
        run_dir.mkdir(parents=True, exist_ok=True)


def _first_val_losses(run_dir: Path) -> dict[str, float]:
    """The validation losses before training (the run's step-0 evaluation)."""
    from birdie_ssm.train import rundir
    from birdie_ssm.train.metrics import read_metrics

    for record in read_metrics(rundir.metrics_path(run_dir)):
        if record.get("kind") == "eval" and record.get("step") == 0:
            return record["val_loss"]
    return {}


def _print_losses(arms: list[str], final: dict[str, float], start: dict[str, float]) -> None:
    width = max(len(a) for a in arms)
    print("\nvalidation loss per objective (nats/token)")
    print(f"  {'arm':<{width}}  {'start':>7}  {'final':>7}")
    for arm in arms:
        first = f"{start[arm]:7.3f}" if start.get(arm) is not None else "      -"
        print(f"  {arm:<{width}}  {first}  {final[arm]:7.3f}")


def _objectives(args: argparse.Namespace) -> None:
    from birdie_ssm.config import load_config
    from birdie_ssm.objectives import describe_objectives

    modules = list(args.module)
    if args.config:
        modules += load_config(args.config).objectives.modules
    for info in describe_objectives(modules):
        print(f"{info['name']}  ({info['origin']})  {info['doc']}")
        for p in info["parameters"]:
            print(f"    {p['name']}: {p['type']} = {p['default']!r}")


def _report(run_dir: Path, quiet: bool = False) -> None:
    from birdie_ssm.train.report import make_report

    if Path(run_dir).is_dir():
        check_writable(Path(run_dir), "run directory")
    paths = make_report(Path(run_dir))
    if not quiet:
        for path in paths:
            print(path)


BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench(args: argparse.Namespace) -> None:
    script = BENCH_DIR / f"{args.which}.py"
    if not script.is_file():
        raise BirdieError(
            f"benchmark script '{script}' is not there (benchmarks ship with the repository)"
        )
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except (BirdieError, SystemExit, KeyboardInterrupt):
        raise  # its own one-line error, argparse's usage message (exit 2), or Ctrl-C
    except Exception as exc:  # a benchmark is a script: report its failure, not its traceback
        where = _innermost(exc, script)
        raise BirdieError(f"benchmark '{args.which}' failed{where}: {type(exc).__name__}: "
                          f"{exc} (arguments: {' '.join(args.args) or 'none'})"
                          ) from None  # fmt: skip


def _innermost(exc: BaseException, script: Path) -> str:
    """' at FILE:LINE' of the innermost frame of ``exc`` in ``script``, or ''."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(script)]
    return f" at {script.name}:{frames[-1].lineno}" if frames else ""


def _add_eval_verbs(verbs: argparse._SubParsersAction) -> None:
    """The verbs that read trained runs: ``eval``, ``generate`` and ``experiment``; each sets
    ``run`` to the function that carries it out."""
    from birdie_ssm.tasks import registered_tasks
    from birdie_ssm.tasks.base import FORMATS

    tasks = registered_tasks()

    ev = verbs.add_parser("eval", help="evaluate a checkpoint on a retrieval task or your items")
    ev.add_argument("tasks", nargs="*", metavar="TASK",
                    help=f"one or more of: {', '.join(tasks)}; or 'all'; or 'custom' with "
                    "--items; none: the tasks the run's config lists (eval.tasks)")  # fmt: skip
    ev.add_argument("--checkpoint", required=True, metavar="DIR",
                    help="a run or export directory")  # fmt: skip
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a task setting, e.g. --set book_sizes=[4,8] --set samples=16; for "
                    f"--items: {', '.join(CUSTOM_SETTINGS)}")  # fmt: skip
    ev.add_argument("--items", metavar="FILE.jsonl",
                    help='your own items, one {"prompt": ..., "answer": ...} a line')  # fmt: skip
    ev.add_argument("--scorer", default="exact",
                    help="how --items answers are scored: exact, prefix, contains, "
                    "token_accuracy (default exact)")  # fmt: skip
    ev.add_argument("--all-predictions", action="store_true",
                    help="store every prediction in the result JSON (default: the first 8 "
                    "per sweep point)")  # fmt: skip
    ev.add_argument("--show", type=int, default=0, metavar="N",
                    help="also print the first N stored predictions of each result")  # fmt: skip
    ev.add_argument("--step", type=int, metavar="N",
                    help="evaluate checkpoint N (default: the latest); results under other "
                    "settings or steps are kept apart, as eval/TASK@<what "
                    "differs>.json")  # fmt: skip
    ev.set_defaults(run=_eval)

    gen = verbs.add_parser("generate", help="continue a prompt with a trained model")
    gen.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run or export directory")  # fmt: skip
    gen.add_argument("--prompt", required=True, help="text to continue")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    gen.add_argument("--format", default="auto", choices=list(FORMATS),
                     help="prompt layout (see birdie_ssm/evaluation/prompts.py); native needs "
                     "--objective")  # fmt: skip
    gen.add_argument("--objective", metavar="NAME",
                     help="with --format native: lay the prompt out as this objective's input "
                     "(one the run trained)")  # fmt: skip
    gen.set_defaults(run=_generate)

    exp = verbs.add_parser("experiment", help="train several runs, evaluate them, write results.md")
    exp.add_argument("file", metavar="FILE", help="experiment YAML (see configs/experiments/)")
    exp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="a config override applied to every run, "
                     "e.g. train.steps=20")  # fmt: skip
    exp.add_argument(
        "--output", metavar="DIR", help="where runs and results go (default: the file's)"
    )
    exp.add_argument("--seeds", type=_seeds, metavar="S,S,...",
                     help="seeds to run (replaces the file's 'seeds'), e.g. 0,1,2")  # fmt: skip
    exp.set_defaults(run=_experiment)


CUSTOM_SETTINGS = ("format", "objective", "batch_size", "max_new_tokens")


def _add_weight_verbs(verbs: argparse._SubParsersAction) -> None:
    """``export`` (a run as safetensors + config.json) and ``convert recurrentgemma``."""
    exp = verbs.add_parser("export", help="write a run as model.safetensors, config.json, "
                           "tokenizer and model card")  # fmt: skip
    exp.add_argument("run_dir", metavar="RUN_DIR")
    exp.add_argument("--to", required=True, metavar="DIR", help="the export directory")
    exp.add_argument("--step", type=int, metavar="N", help="checkpoint N (default: the latest)")
    exp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    exp.add_argument("--force", action="store_true", help="replace a non-empty --to")
    exp.set_defaults(run=_export)

    conv = verbs.add_parser("convert", help="convert another project's checkpoint")
    conv.add_argument("source", choices=["recurrentgemma"])
    conv.add_argument("checkpoint", metavar="CKPT", help="a RecurrentGemma Orbax checkpoint")
    conv.add_argument("--to", required=True, metavar="RUN_DIR", help="the export directory")
    conv.add_argument("--tokenizer", metavar="FILE",
                      help="its tokenizer as a tokenizers JSON or tiktoken file (default: none, "
                      "the byte tokenizer)")  # fmt: skip
    conv.add_argument("--window", type=int, default=2048, help="local attention window")
    conv.add_argument("--soft-cap", type=float, default=30.0, help="logit soft-cap (0: none)")
    conv.add_argument(
        "--no-embed-scale",
        action="store_true",
        help="embeddings not multiplied by sqrt(width) (Griffin paper models)",
    )
    conv.add_argument("--force", action="store_true", help="replace a non-empty --to")
    conv.set_defaults(run=_convert)


def _export(args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.runner import check_run_dir
    from birdie_ssm.train.export import export_run, prepare_directory
    from birdie_ssm.train.loading import load_run

    check_run_dir(args.run_dir)
    prepare_directory(args.to, args.force)  # refuse before loading anything
    run = load_run(args.run_dir, args.step)
    path = export_run(run, args.to, dtype=args.dtype, force=args.force)
    print(f"exported step {run.step} of {args.run_dir} ({args.dtype}) to {path}")


def _convert(args: argparse.Namespace) -> None:
    from birdie_ssm.train.convert import convert_recurrentgemma

    if args.window < 1:
        raise BirdieError(f"--window must be >= 1, got {args.window}")
    path = convert_recurrentgemma(
        args.checkpoint, args.to, tokenizer=args.tokenizer, window=args.window,
        soft_cap=args.soft_cap or None, scale_embeddings=not args.no_embed_scale,
        force=args.force,
    )  # fmt: skip
    print(f"converted {args.checkpoint} to {path}")


def _custom_settings(pairs: list[str]) -> dict[str, object]:
    """``--set`` values for ``--items``: the keys of CUSTOM_SETTINGS (values read as YAML)."""
    import yaml

    values: dict[str, object] = {}
    for text in pairs:
        key, sep, raw = text.partition("=")
        if not sep or key.strip() not in CUSTOM_SETTINGS:
            raise BirdieError(f"--set with --items takes key=value with key one of "
                              f"{', '.join(CUSTOM_SETTINGS)}, got {text!r}")  # fmt: skip
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            values[key.strip()] = raw
    for key in ("batch_size", "max_new_tokens"):
        if key in values and (not isinstance(values[key], int) or values[key] < 1):
            raise BirdieError(f"--set {key} must be an integer >= 1, got {values[key]!r}")
    return values


def _eval(args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.api import SCORERS, read_items
    from birdie_ssm.evaluation.runner import EvalContext, check_run_dir
    from birdie_ssm.tasks import registered_tasks, task_settings
    from birdie_ssm.train import rundir

    custom = args.items is not None
    if custom and args.tasks not in ([], ["custom"]):
        raise BirdieError("--items evaluates your own items: give no task, or 'custom'")
    if not custom and "custom" in args.tasks:
        raise BirdieError("task 'custom' evaluates your own items: pass --items FILE.jsonl")
    if args.show < 0:
        raise BirdieError(f"--show must be >= 0, got {args.show}")
    # Check every request, and that the results can be written, before loading anything.
    if custom:
        items = read_items(args.items)
        options = _custom_settings(args.set)
        SCORERS.lookup(args.scorer)
        tasks = [f"custom-{Path(args.items).stem}"]
    elif args.tasks:
        tasks = list(registered_tasks()) if args.tasks == ["all"] else args.tasks
        settings = {task: task_settings(task, args.set) for task in tasks}
    if custom or args.tasks:
        check_run_dir(args.checkpoint)
    else:  # the tasks the run's own config asks (eval.tasks), --set applied to each
        check_run_dir(args.checkpoint)  # before its config is read
        settings = _configured_tasks(Path(args.checkpoint), args.set)
        tasks = list(settings)
    check_writable(rundir.eval_dir(args.checkpoint), "evaluation folder")
    ctx = EvalContext.load(args.checkpoint, args.step)
    if custom:
        _eval_items(ctx, items, options, tasks[0], args)
        return
    from birdie_ssm.evaluation.results import save_result
    from birdie_ssm.evaluation.runner import evaluate_task, result_file
    from birdie_ssm.tasks import get_task

    for task in tasks:
        result = evaluate_task(ctx, task, settings[task], all_predictions=args.all_predictions)
        if get_task(task).meaning:
            _say(f"{task}: {result.metric} = {get_task(task).meaning}")
        _say(result.table())  # printed before the write: a failed write loses nothing
        if args.show:
            _say(result.show_predictions(args.show))
        path = save_result(result, result_file(ctx, task, settings[task]))
        _say(f"written to {path}\n")


def _configured_tasks(run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """The run's ``eval.tasks`` with ``--set`` overrides applied to each: the tasks a plain
    ``birdie-ssm eval --checkpoint DIR`` asks."""
    from birdie_ssm.tasks import task_settings
    from birdie_ssm.train import rundir

    tasks = rundir.read_config(run_dir).eval.tasks
    if not tasks:
        raise BirdieError(f"the run in '{run_dir}' names no eval.tasks; name the tasks to "
                          "evaluate (e.g. `birdie-ssm eval mqar --checkpoint DIR`) "
                          "or 'all'")  # fmt: skip
    out = {}
    for name, values in tasks.items():
        pairs = [f"{k}={json.dumps(v)}" for k, v in (values or {}).items()]
        out[name] = task_settings(name, [*pairs, *overrides])
    return out


def _eval_items(ctx, items, options, name: str, args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.api import evaluate

    result = evaluate(ctx, items, args.scorer, name=name, **options)
    _say(result.table())
    if args.show:
        _say(result.show_predictions(args.show))
    from birdie_ssm.evaluation.results import items_result_path

    where = items_result_path(args.checkpoint, args.items, args.scorer, ctx.step, options)
    path = result.save(where, args.all_predictions)
    _say(f"written to {path}\n")


def _generate(args: argparse.Namespace) -> None:
    from birdie_ssm.evaluation.prompts import choose_format, objective_format, render
    from birdie_ssm.evaluation.runner import EvalContext
    from birdie_ssm.models.decode import generate

    if args.max_new_tokens < 1:
        raise BirdieError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.format == "native" and not args.objective:
        raise BirdieError("--format native needs --objective NAME (whose input layout to use)")
    if args.objective and args.format not in ("auto", "native"):
        raise BirdieError(f"--objective lays the prompt out natively; drop --format {args.format}")
    ctx = EvalContext.load(args.checkpoint)
    specials = ctx.tokenizer.specials
    if args.objective:
        fmt = objective_format(ctx.config, specials, args.objective)
    else:
        fmt = choose_format(ctx.config, specials, None, args.format)
    prompt = render(fmt, specials, ctx.tokenizer.encode(args.prompt))
    out = generate(
        ctx.model, [prompt], args.max_new_tokens, prefix_len=fmt.prefix_len,
        temperature=args.temperature, stop_token=specials.eod,
    )[0]  # fmt: skip
    ended = out == specials.eod
    out = out[: ended.argmax()] if ended.any() else out
    if fmt.kind == "native":  # an objective's target may hold sentinels: show them by name
        from birdie_ssm.evaluation.runner import show_ids

        print(show_ids(ctx.tokenizer, out))
    else:
        print(ctx.tokenizer.decode(out))


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
    from birdie_ssm.train.trainer import Interrupted

    if args.output is not None:
        check_writable(args.output, "--output")
    try:
        paths = run_experiment(args.file, overrides=args.set, output=args.output, seeds=args.seeds)
    except Interrupted as exc:  # its line says train --resume, which experiment has not
        stopped = BirdieError(
            f"{exc.signal_name} at step {exc.step}: checkpoint written; run the same "
            "`birdie-ssm experiment` command again to continue (finished stages are kept)"
        )
        stopped.exit_code = exc.exit_code
        raise stopped from None
    for path in paths:
        print(path)


def _silence_stdout() -> None:
    """Send what is still printed (and Python's flush at exit) to /dev/null."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _say(text: str) -> None:
    """Print ``text`` at once; a reader that went away (``| head``) silences what follows but
    stops no work (the result files are still written)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _silence_stdout()


_DISK_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``birdie-ssm`` console script."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.verb == "train":
            _train(args)
        elif args.verb == "objectives":
            _objectives(args)
        elif args.verb == "report":
            _report(Path(args.run_dir))
        elif args.verb == "bench":
            _bench(args)
        else:
            args.run(args)  # the verbs added by _add_eval_verbs
    except BirdieError as exc:
        print(f"birdie-ssm: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("birdie-ssm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        # Permission or space lost while running (checked up front where it can be).
        where = f": '{exc.filename}'" if exc.filename else ""
        fix = "free some space" if exc.errno == errno.ENOSPC else "fix its permissions"
        print(f"birdie-ssm: error: {exc.strerror}{where}; {fix} or choose another directory",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
