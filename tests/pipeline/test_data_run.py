"""End to end through the CLI: a run over two weighted sources with a sentencepiece tokenizer,
moved to another directory (the tokenizer's original file gone) and evaluated there; then
resumed from its checkpoint with another worker count."""

import io
import json
import shutil

import pytest

from birdie_ssm.cli import main
from tests.helpers import TINY


@pytest.mark.slow
def test_a_weighted_two_source_sentencepiece_run_moves_and_evaluates(tmp_path, capsys):
    import sentencepiece

    web = [f"page {i}: the quick brown fox jumps over the lazy dog. " * 4 for i in range(300)]
    code = [f"def f{i}(x):\n    return x * {i}\n" * 3 for i in range(300)]
    (tmp_path / "web.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in web))
    (tmp_path / "code.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in code))
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(web[:50] + code[:50]), model_writer=model, vocab_size=120,
        minloglevel=2,
    )  # fmt: skip
    tok_dir = tmp_path / "tokenizer-home"
    tok_dir.mkdir()
    (tok_dir / "sp.model").write_bytes(model.getvalue())
    sources = (
        f"[{{name: web, files: ['{tmp_path}/web.jsonl'], weight: 0.7}}, "
        f"{{name: code, files: ['{tmp_path}/code*.jsonl'], weight: 0.3}}]"
    )
    sets = [*TINY, "train.steps=4", "train.checkpoint_every=2", "data.corpus=files",
            f"data.sources={sources}", "data.tokenizer=sentencepiece",
            f"data.tokenizer_path={tok_dir / 'sp.model'}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.workers=0"]  # fmt: skip
    args = [x for s in sets for x in ("--set", s)]
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *args]) == 0, capsys.readouterr().err
    assert (run / "tokenizer" / "sp.model").is_file()
    # resume with two workers: the worker count is not part of the run
    assert main(["train", "--run-dir", str(run), "--resume", "--set", "data.workers=2"]) == 0
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(run, moved)
    shutil.rmtree(tok_dir)
    capsys.readouterr()
    assert main(["eval", "copying", "--checkpoint", str(moved)]) == 0, capsys.readouterr().err
    assert "copying" in capsys.readouterr().out
