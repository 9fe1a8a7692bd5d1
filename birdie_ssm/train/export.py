"""A model as portable files: ``model.safetensors``, ``config.json``, tokenizer, model card.

An export directory holds the parameters under flat names (the module path joined by dots,
e.g. ``blocks.0.mixer.linear_x.kernel``; a ``model.scan_layers`` run's ``scanned.*`` tensors
carry a leading axis over the stacked layers), the run's whole config as JSON (what
``--config`` reads back), the tokenizer's file when the run has one (``config.json`` names it
relative to the directory) and ``README.md``, a short model card. ``train.loading.load_run``
takes such a directory wherever it takes a run directory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.config import Config, validate
from birdie_ssm.errors import BirdieError, check_writable
from birdie_ssm.text import Tokenizer
from birdie_ssm.train import rundir
from birdie_ssm.train.build import TrainedRun, build_model_for, build_tokenizer

WEIGHTS = rundir.EXPORT_WEIGHTS
CONFIG = rundir.EXPORT_CONFIG
CARD = "README.md"
DTYPES = ("float32", "bfloat16")


def _name(path: tuple[Any, ...]) -> str:
    """The flat tensor name of a pure-dict path (its keys joined by dots)."""
    return ".".join(str(entry.key) for entry in path)


def flat_params(model: nnx.Module) -> dict[str, jax.Array]:
    """The model's parameters by flat tensor name (module path joined by dots)."""
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param).to_pure_dict())[0]
    return {_name(path): value for path, value in leaves}


def load_flat_params(model: nnx.Module, tensors: Mapping[str, Any], source: str) -> None:
    """Set every parameter of ``model`` from ``tensors`` (flat names), cast to its dtype.

    A BirdieError names the tensors ``source`` lacks or has in excess, or a shape that differs.
    """
    mine = flat_params(model)
    missing, extra = sorted(mine.keys() - tensors.keys()), sorted(tensors.keys() - mine.keys())
    if missing or extra:
        parts = [f"{what} {_names(names)}" for what, names in (("missing", missing),
                 ("extra", extra)) if names]  # fmt: skip
        raise BirdieError(f"{source} does not fit this model: {'; '.join(parts)}")
    for name, target in mine.items():
        if tuple(tensors[name].shape) != tuple(target.shape):
            raise BirdieError(
                f"{source}: tensor '{name}' has shape {tuple(tensors[name].shape)}, the model "
                f"needs {tuple(target.shape)}"
            )

    state = nnx.state(model, nnx.Param)
    pure = jax.tree_util.tree_map_with_path(
        lambda path, value: jnp.asarray(tensors[_name(path)], dtype=value.dtype),
        state.to_pure_dict(),
    )
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def _names(names: list[str], shown: int = 4) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(f"'{n}'" for n in names[:shown]) + more


def prepare_directory(to: str | Path, force: bool) -> Path:
    """``to`` ready to receive an export: refused if it holds files, unless ``force``."""
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise BirdieError(f"--to '{to}' is a file, not a directory")
    if to.is_dir() and any(to.iterdir()) and not force:
        raise BirdieError(f"--to '{to}' is not empty; pass --force to replace its contents")
    check_writable(to, "export directory")
    return to


def write_export(
    model: nnx.Module,
    config: Config,
    to: str | Path,
    *,
    dtype: str = "float32",
    step: int = 0,
    card: str = "",
    force: bool = False,
    has_tokenizer: bool = True,
) -> Path:
    """Write ``model`` and ``config`` as an export directory; return its path.

    Files are written to a sibling temporary directory that replaces ``to`` once complete, so a
    failure leaves no partial export. ``has_tokenizer`` False records that the configured
    tokenizer (the byte one) is a stand-in: text commands then refuse (``NoTokenizer``).
    """
    import safetensors.flax

    if dtype not in DTYPES:
        raise BirdieError(f"--dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    to = prepare_directory(to, force)
    tmp = to.with_name(f".{to.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tensors = {
            name: jnp.asarray(value, dtype=dtype)
            if jnp.issubdtype(value.dtype, jnp.floating)
            else jnp.asarray(value)
            for name, value in flat_params(model).items()
        }
        meta = {"format": "birdie-ssm", "step": str(step), "dtype": dtype}
        if not has_tokenizer:
            meta["tokenizer"] = "none"
        safetensors.flax.save_file(tensors, str(tmp / WEIGHTS), metadata=meta)
        saved = config.model_dump(mode="json")
        saved["model"]["vocab_size"] = model.vocab_size
        path = config.data.tokenizer_path
        if path and config.data.tokenizer != "byte":
            shutil.copyfile(path, tmp / Path(path).name)
            saved["data"]["tokenizer_path"] = Path(path).name
        (tmp / CONFIG).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(card, encoding="utf-8")
        shutil.rmtree(to, ignore_errors=True)
        tmp.rename(to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return to


def load_export(directory: str | Path) -> TrainedRun:
    """The model, config and tokenizer of an export directory (parameters as float32)."""
    import safetensors
    import safetensors.flax

    directory = Path(directory)
    raw = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    path = raw.get("data", {}).get("tokenizer_path")
    if path and not Path(path).is_absolute():
        raw["data"]["tokenizer_path"] = str(directory / path)
    config = validate(raw)
    try:
        with safetensors.safe_open(str(directory / WEIGHTS), framework="flax") as f:
            meta = f.metadata() or {}
        tensors = safetensors.flax.load_file(str(directory / WEIGHTS))
    except (OSError, ValueError, safetensors.SafetensorError) as exc:
        raise BirdieError(
            f"'{directory / WEIGHTS}' is not a readable safetensors file: {exc}"
        ) from None
    tokenizer = build_tokenizer(config)
    model = build_model_for(config, tokenizer)
    load_flat_params(model, tensors, f"'{directory / WEIGHTS}'")
    if meta.get("tokenizer") == "none":
        tokenizer = NoTokenizer(tokenizer, directory)
    step = int(meta.get("step", 0))
    return TrainedRun(model, config, tokenizer, step, {"step": step, **meta}, directory)


class NoTokenizer:
    """The tokenizer of a model converted without one: its ids and specials (what training on
    token data needs), but reading or writing text is refused in one line."""

    def __init__(self, ids: Tokenizer, directory: Path) -> None:
        self.specials, self.vocab_size, self.directory = ids.specials, ids.vocab_size, directory

    def _refuse(self) -> BirdieError:
        return BirdieError(
            f"'{self.directory}' was converted without a tokenizer, so it cannot read or write "
            "text; convert it again with --tokenizer FILE"
        )

    def encode(self, text: str) -> np.ndarray:
        raise self._refuse()

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        raise self._refuse()


def export_run(run: TrainedRun, to: str | Path, *, dtype: str = "float32", force: bool = False):
    """Export a restored run (``train.loading.load_run``) with its model card; return the path."""
    return write_export(
        run.model,
        run.config,
        to,
        dtype=dtype,
        step=run.step,
        card=run_card(run),
        force=force,
        has_tokenizer=not isinstance(run.tokenizer, NoTokenizer),
    )


def run_card(run: TrainedRun) -> str:
    """A short model card: architecture, objectives, steps and tokens, the mixture's history."""
    from birdie_ssm.train.metrics import read_metrics

    c, m = run.config, run.config.model
    metrics = rundir.metrics_path(run.run_dir) if run.run_dir else None
    evals = [r for r in read_metrics(metrics) if r.get("kind") == "eval"] if (
        metrics and metrics.is_file()) else []  # fmt: skip
    lines = [
        f"# {c.name}",
        "",
        "Trained with birdie-ssm; exported by `birdie-ssm export`.",
        "",
        f"- model: {m.arch}, blocks {m.block_pattern} (R = {m.mixer}, A = {m.attention_mixer}), "
        f"width {m.width}, depth {m.depth}, bidirectional {m.bidirectional}, "
        f"vocabulary {run.model.vocab_size}",
        f"- tokenizer: {c.data.tokenizer}",
        f"- objectives: {', '.join(o.name for o in c.objectives.mixture)}",
        f"- controller: {c.controller.name}",
        f"- steps: {run.step}, tokens: {int(run.meta.get('tokens_seen', 0)):,}",
    ]
    mixtures = [(r["step"], r["mixture"]) for r in evals if isinstance(r.get("mixture"), dict)]
    if mixtures:
        lines += ["", "Mixture (target-token shares) at the first and the last evaluation:", ""]
        arms = list(mixtures[-1][1])
        lines += ["| step | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        for step, mix in mixtures[:1] + mixtures[1:][-1:]:
            lines.append(f"| {step} | " + " | ".join(f"{mix.get(a, 0):.3f}" for a in arms) + " |")
    return "\n".join(lines) + "\n"
