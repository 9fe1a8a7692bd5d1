"""A birdie-ssm run as a model for EleutherAI's lm-evaluation-harness (``lm_eval``).

    pip install "birdie-ssm[lm-eval]"

    import lm_eval
    import birdie_ssm.evaluation.lm_eval  # registers the model "birdie-ssm"

    results = lm_eval.simple_evaluate(
        model="birdie-ssm", model_args="run_dir=runs/quickstart,batch_size=16", tasks=["lambada"]
    )

or, with the harness's own command line, ``python -m birdie_ssm.evaluation.lm_eval --model
birdie-ssm --model_args run_dir=runs/quickstart --tasks lambada`` (the harness's CLI with the
model registered first).

How requests meet the model (the layouts of evaluation/prompts.py, chosen with ``format``):

- ``loglikelihood(context, continuation)``: the prompt ``render(fmt, context)`` followed by the
  continuation. In the ``prefix`` layout (``[paradigm(prefix_lm), context..., sep]``) the
  context is read bidirectionally where the model has bidirectional layers, as prefix-LM
  examples were trained; the continuation is scored causally, one token at a time. In the
  ``causal`` layout (``[paradigm(next_token), sep, context...]``) everything is causal.
- ``loglikelihood_rolling(text)``: the text as continuations of an empty context, in disjoint
  windows of ``max_length - 3`` tokens; each later window reads as its context as many of the
  tokens before it as the row has room for (at least one).
- ``generate_until(context, {until, max_gen_toks})``: greedy decoding of the rendered context,
  cut at the first ``until`` string or the end token. The context is kept whole (up to the row
  less one generated token) and the generation is capped to what is left of ``max_length``: a
  question cut to make room for a long answer could no longer be answered.

The core (``HarnessModel``) does not import lm_eval; ``BirdieSSMLM`` (defined only when lm_eval
is importable) is the same class on top of lm_eval's ``LM``, registered as "birdie-ssm".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import choose_format, objective_format, render
from birdie_ssm.evaluation.runner import EvalContext, bucket, complete
from birdie_ssm.tasks.base import text_of

__all__ = ["HarnessModel", "token_logprobs"]

MIN_LENGTH_BUCKET = 64
DEFAULT_GEN_TOKENS = 256


@jax.jit
def _logprobs(graphdef, state, ids, prefix_mask, segment_ids):
    model = nnx.merge(graphdef, state)
    logits = model(ids, prefix_mask, segment_ids)[:, :-1].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    target = ids[:, 1:]
    picked = jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return picked, jnp.argmax(logits, axis=-1) == target


def token_logprobs(
    model: nnx.Module,
    rows: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    prefix_len: int | None,
    pad: int,
    batch_size: int,
) -> list[tuple[float, bool]]:
    """``(sum of log p(continuation | prompt), whether greedy decoding gives it)`` per
    ``(prompt, continuation)`` row of ids. The prompt's first ``prefix_len`` tokens (None: all
    of it) are the bidirectional prefix; the continuation is scored causally. Rows are
    right-padded (a padding run is a segment of its own, so it never touches a row) to
    power-of-two lengths in batches of ``batch_size``: few compiled shapes."""
    graphdef, state = nnx.split(model)
    out: list[tuple[float, bool]] = [(0.0, True)] * len(rows)
    # Longest first: rows of one batch share a length bucket as often as possible.
    order = sorted(range(len(rows)), key=lambda i: -(len(rows[i][0]) + len(rows[i][1])))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        length = bucket(max(len(rows[i][0]) + len(rows[i][1]) for i in chunk), MIN_LENGTH_BUCKET)
        ids = np.full((batch_size, length), pad, np.int32)
        segment_ids = np.zeros((batch_size, length), np.int32)
        prefix_mask = np.zeros((batch_size, length), bool)
        for r, i in enumerate(chunk):
            prompt, cont = rows[i]
            n = len(prompt) + len(cont)
            ids[r, :n] = np.concatenate([prompt, cont])
            segment_ids[r, :n] = 1
            prefix_mask[r, : len(prompt) if prefix_len is None else min(prefix_len, n)] = True
        logp, greedy = _logprobs(graphdef, state, ids, prefix_mask, segment_ids)
        logp, greedy = np.asarray(logp), np.asarray(greedy)
        for r, i in enumerate(chunk):
            prompt, cont = rows[i]
            # Position t predicts token t + 1: the continuation is predicted from len(prompt)-1.
            span = slice(len(prompt) - 1, len(prompt) - 1 + len(cont))
            out[i] = (float(logp[r, span].sum()), bool(greedy[r, span].all()))
    return out


def _args(request: Any) -> tuple:
    """A request's arguments: an lm_eval ``Instance`` (``.args``) or a plain tuple."""
    return tuple(request.args) if hasattr(request, "args") else tuple(request)


class HarnessModel:
    """lm-evaluation-harness's three request types, answered by a birdie-ssm run.

    ``run``: a run directory (its checkpoint ``step``, default the latest) or an
    ``EvalContext``. ``format``: the prompt layout ("auto": prefix if the run trained prefix_lm,
    else causal; see evaluation/prompts.py); ``objective``: lay contexts out as that trained
    objective's input instead. ``max_length``: the longest row scored (default: the run's
    ``data.seq_len``); longer contexts lose their oldest tokens, and a longer continuation is
    scored in windows. Requests may be lm_eval ``Instance`` objects or plain argument tuples.
    """

    def __init__(
        self,
        run: EvalContext | str | Path | None = None,
        *,
        run_dir: str | Path | None = None,
        step: int | None = None,
        batch_size: int | str = 16,
        max_length: int | None = None,
        format: str = "auto",
        objective: str | None = None,
        **_ignored: Any,  # lm_eval passes device, max_batch_size, ...
    ) -> None:
        run = run if run is not None else run_dir
        if run is None:
            raise BirdieError("birdie-ssm needs run_dir=<a run directory>")
        self.run = run if isinstance(run, EvalContext) else EvalContext.load(run, step)
        self.tokenizer = self.run.tokenizer
        self.specials = self.tokenizer.specials
        config, specials = self.run.config, self.specials
        if objective:
            self.fmt = objective_format(config, specials, objective)
        else:
            self.fmt = choose_format(config, specials, None, format)
        # lm_eval's --batch_size arrives as text ("8", or "auto", "auto:N": a fixed size here).
        if isinstance(batch_size, str):
            batch_size = int(batch_size) if batch_size.strip().isdigit() else 16
        size = int(batch_size)
        if size < 1:
            raise BirdieError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = size
        self.max_length = int(max_length or config.data.seq_len)
        if self.max_length < 8:
            raise BirdieError(f"max_length must be >= 8, got {self.max_length}")

    # -- layout -----------------------------------------------------------------------------

    def _encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(text), np.int32) if text else np.zeros(0, np.int32)

    def _prompt(self, context: np.ndarray, room: int) -> np.ndarray:
        """The rendered prompt of ``context``, its oldest tokens dropped to leave ``room``."""
        overhead = len(render(self.fmt, self.specials, np.zeros(0, np.int32)))
        keep = max(self.max_length - room - overhead, 0)
        return render(
            self.fmt, self.specials, context[max(len(context) - keep, 0) :] if keep else []
        )

    def _score(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, bool]]:
        """``(log p(cont | context), whether greedy decoding gives it)`` per pair. A continuation
        longer than a row is scored in windows, each read after as many of the tokens before it
        as the row holds, so every token of it counts."""
        overhead = len(render(self.fmt, self.specials, np.zeros(0, np.int32)))
        window = max(self.max_length - overhead - 1, 1)  # one context token at least
        rows, owner = [], []
        for n, (context, cont) in enumerate(pairs):
            whole = np.concatenate([context, cont]).astype(np.int32)
            for start in range(0, len(cont), window):
                piece = cont[start : start + window]
                rows.append((self._prompt(whole[: len(context) + start], len(piece)), piece))
                owner.append(n)
        scored = token_logprobs(
            self.run.model, rows, prefix_len=self.fmt.prefix_len, pad=self.specials.pad,
            batch_size=self.batch_size,
        )  # fmt: skip
        out = [(0.0, True)] * len(pairs)
        for n, (logp, greedy) in zip(owner, scored, strict=True):
            out[n] = (out[n][0] + logp, out[n][1] and greedy)
        return out

    # -- the three request types ------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False):
        """``[(log p(continuation | context), is greedy)]`` per ``(context, continuation)``."""
        pairs = []
        for request in requests:
            context, continuation = _args(request)[:2]
            # A context's trailing spaces belong to the continuation (as lm_eval's HF model).
            stripped = context.rstrip(" ")
            continuation = context[len(stripped) :] + continuation
            pairs.append((self._encode(stripped), self._encode(continuation)))
        return self._score(pairs)

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False):
        """The log-likelihood of each whole text, scored in windows of ``max_length``."""
        empty = np.zeros(0, np.int32)
        pairs = [(empty, self._encode(_args(request)[0])) for request in requests]
        return [logp for logp, _ in self._score(pairs)]

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False):
        """Greedy continuations, each cut at its first ``until`` string."""
        prompts, limits, stops = [], [], []
        for request in requests:
            context, kwargs = _args(request)[:2]
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            wanted = max(1, int(kwargs.get("max_gen_toks", DEFAULT_GEN_TOKENS)))
            # A context that fills the row loses its oldest tokens to leave the answer what it
            # asks, up to a quarter of the row; a shorter one is read whole, the answer getting
            # the rest of the row.
            prompt = self._prompt(self._encode(context), min(wanted, self.max_length // 4))
            prompts.append(prompt)
            limits.append(max(1, min(wanted, self.max_length - len(prompt))))
            stops.append(until)
        outputs = complete(
            self.run.model, prompts, prefix_len=self.fmt.prefix_len, max_new=limits,
            stop=self.specials.eod, filler=self.specials.pad, batch_size=self.batch_size,
        )  # fmt: skip
        texts = []
        for ids, until in zip(outputs, stops, strict=True):
            text = text_of(self.tokenizer, ids) if len(ids) else ""
            cuts = [text.find(s) for s in until if s and s in text]
            texts.append(text[: min(cuts)] if cuts else text)
        return texts


try:  # the harness's model class and registration, only where lm_eval is installed
    from lm_eval.api.model import LM as _LM
    from lm_eval.api.registry import register_model as _register_model
except ImportError:  # pragma: no cover - exercised where lm_eval is absent
    BirdieSSMLM = None
else:
    __all__.append("BirdieSSMLM")

    @_register_model("birdie-ssm")
    class BirdieSSMLM(HarnessModel, _LM):
        """The lm_eval model "birdie-ssm": model_args ``run_dir`` (required), ``step``,
        ``batch_size``, ``max_length``, ``format``, ``objective``."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            _LM.__init__(self)
            HarnessModel.__init__(self, *args, **kwargs)

        @classmethod
        def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
            """The model from ``key=value,...`` model_args (as ``lm_eval.simple_evaluate``
            passes a string)."""
            from lm_eval.utils import simple_parse_args_string

            return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

        @classmethod
        def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
            """The model from model_args as a mapping (lm_eval's command line parses them so).
            lm_eval adds its own ``batch_size`` (default 1), ``device``, ...: a key given in
            model_args wins, where lm_eval's base class passes both and fails."""
            extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
            return cls(**(extra | dict(arg_dict)))


def main(argv: list[str] | None = None) -> None:
    """lm_eval's command line with "birdie-ssm" registered."""
    if BirdieSSMLM is None:
        raise SystemExit("lm_eval is not installed: pip install 'birdie-ssm[lm-eval]'")
    import sys

    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
