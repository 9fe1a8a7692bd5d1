"""The ``birdie-ssm`` command line: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
import time
from pathlib import Path

from birdie_ssm.errors import BirdieError

BENCHMARKS = ("scan", "data", "train", "model", "controller", "memory")


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
    train.add_argument("--overwrite", action="store_true", help="replace an existing run")
    train.add_argument(
        "--init-from", metavar="DIR", help="start from the parameters of another run (fine-tuning)"
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

    from birdie_ssm.evaluation.commands import add_commands

    add_commands(verbs)

    bench = verbs.add_parser("bench", help="run a benchmark from benchmarks/")
    bench.add_argument("which", choices=BENCHMARKS)
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    return parser


def _train(args: argparse.Namespace) -> None:
    from birdie_ssm.config import load_config

    config = load_config(args.config, args.set)  # validate before touching the disk
    run_dir = Path(args.run_dir or Path("runs") / config.name)
    existing = run_dir.exists() and any(run_dir.iterdir())
    if args.resume and not (run_dir / "checkpoints").is_dir():
        raise BirdieError(f"--resume: '{run_dir}' holds no checkpoint to resume")
    if existing and not (args.resume or args.overwrite):
        raise BirdieError(
            f"run directory '{run_dir}' already holds a run; pass --resume to continue it, "
            "--overwrite to start again, or choose another --run-dir"
        )
    if args.resume and args.overwrite:
        raise BirdieError("--resume and --overwrite exclude each other")

    from birdie_ssm.train.trainer import Trainer

    created = not run_dir.exists()
    if args.overwrite and existing:
        shutil.rmtree(run_dir)
    try:
        trainer = Trainer(config, run_dir, resume=args.resume, init_from=args.init_from)
    except BirdieError:
        if created or args.overwrite:  # leave nothing half-made behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(
        f"run '{config.name}' in {run_dir}: {trainer.num_params:,} parameters, "
        f"{len(trainer.arms)} arms, {config.train.steps} steps",
        flush=True,
    )
    start = time.perf_counter()
    try:
        losses = trainer.fit()
    finally:
        trainer.close()
    _print_losses(trainer.arm_names, losses, _first_val_losses(run_dir))
    print(f"trained to step {trainer.step} in {time.perf_counter() - start:.0f} s")
    _report(run_dir, quiet=True)
    print(f"checkpoint, metrics.jsonl and plots in {run_dir}")


def _first_val_losses(run_dir: Path) -> dict[str, float]:
    """The validation losses before training (the run's step-0 evaluation)."""
    from birdie_ssm.train.metrics import read_metrics

    for record in read_metrics(run_dir / "metrics.jsonl"):
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
    from birdie_ssm.evaluation.report import make_report

    paths = make_report(Path(run_dir))
    if not quiet:
        for path in paths:
            print(path)


def _bench(args: argparse.Namespace) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{args.which}.py"
    if not script.is_file():
        raise BirdieError(
            f"benchmark script '{script}' is not there (benchmarks ship with the repository)"
        )
    sys.argv = [str(script), *args.args]
    runpy.run_path(str(script), run_name="__main__")


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
            args.run(args)  # verbs added by birdie_ssm.evaluation.commands
    except BirdieError as exc:
        print(f"birdie-ssm: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("birdie-ssm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
