"""Export to safetensors + config.json and back: exact in float32, bf16 within rounding; the
export directory loads wherever a run directory does; bad inputs fail in one line."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.flax

from birdie_ssm.cli import main
from birdie_ssm.errors import BirdieError
from birdie_ssm.text import ByteTokenizer
from birdie_ssm.train.convert import tokenizer_data_config, with_tokenizer
from birdie_ssm.train.export import WEIGHTS, flat_params, load_export
from birdie_ssm.train.loading import load_run
from birdie_ssm.train.trainer import Trainer
from tests.helpers import jit_forward, tiny_config

STEPS = ["train.steps=2", "train.checkpoint_every=2", "train.log_every=1", "data.seq_len=32",
         "model.bidirectional=alternate"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("export_run")
    trainer = Trainer(tiny_config(*STEPS), path, progress=False)
    trainer.fit()
    trainer.close()
    return path


@pytest.fixture(scope="module")
def trained(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """float32 and bfloat16 exports of the run, written by the CLI."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        to = tmp_path_factory.mktemp("exports") / dtype
        assert main(["export", str(run_dir), "--to", str(to), "--dtype", dtype]) == 0
        out[dtype] = to
    return out


def _logits(model):
    ids = jax.random.randint(jax.random.key(0), (2, 24), 0, 256)
    prefix = jnp.arange(24)[None].repeat(2, 0) < 10
    return np.asarray(jit_forward(model, ids, prefix))


def test_float32_export_round_trips_exactly(trained, exported):
    back = load_run(exported["float32"])
    np.testing.assert_array_equal(_logits(back.model), _logits(trained.model))
    assert back.step == trained.step == 2
    # The export spells out the vocabulary the run took from its tokenizer.
    assert back.config.model == trained.config.model.model_copy(update={"vocab_size": 448})


def test_bfloat16_export_is_the_run_rounded_to_bfloat16(trained, exported):
    back = load_export(exported["bfloat16"])
    theirs, mine = flat_params(back.model), flat_params(trained.model)
    for name, value in mine.items():
        rounded = np.asarray(value.astype(jnp.bfloat16).astype(jnp.float32))
        np.testing.assert_array_equal(np.asarray(theirs[name]), rounded, err_msg=name)
    want, got = _logits(trained.model), _logits(back.model)
    assert np.max(np.abs(got - want)) <= 0.05 * np.max(np.abs(want))


def test_export_directory_holds_config_card_and_documented_names(exported, trained):
    to = exported["float32"]
    config = json.loads((to / "config.json").read_text())
    assert config["model"]["width"] == 32 and config["model"]["vocab_size"] == 448
    card = (to / "README.md").read_text()
    assert "steps: 2" in card and "next_token" in card and "| step |" in card
    names = set(safetensors.flax.load_file(str(to / WEIGHTS)))
    assert {"embedder.table", "final_norm.scale", "blocks.1.mlp.down.kernel"} <= names
    assert names == set(flat_params(trained.model))


@pytest.mark.slow
def test_eval_generate_and_init_from_take_an_export(exported, tmp_path, capsys):
    to = str(exported["float32"])
    assert main(["generate", "--checkpoint", to, "--prompt", "ab", "--max-new-tokens", "3"]) == 0
    argv = ["train", "--config", f"{to}/config.json", "--init-from", to, "--run-dir",
            str(tmp_path / "ft"), "--set", "train.steps=1",
            "--set", "train.checkpoint_every=1"]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "ft" / "checkpoints").is_dir()


def test_export_refuses_a_non_empty_directory(run_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export", str(run_dir), "--to", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "not empty; pass --force" in err and err.count("\n") == 1
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_missing_and_extra_tensors_are_named(exported, tmp_path):
    import shutil

    to = tmp_path / "edited"
    shutil.copytree(exported["float32"], to)
    tensors = dict(safetensors.flax.load_file(str(to / WEIGHTS)))
    tensors.pop("final_norm.scale")
    tensors["blocks.9.stray"] = jnp.zeros(3)
    safetensors.flax.save_file(tensors, str(to / WEIGHTS), metadata={"step": "2"})
    with pytest.raises(BirdieError) as info:
        load_run(to)
    message = str(info.value)
    assert "missing 'final_norm.scale'" in message and "extra 'blocks.9.stray'" in message
    assert "\n" not in message


def test_a_tokenizer_of_another_size_is_refused():
    from birdie_ssm.config import ModelConfig

    model = ModelConfig(vocab_size=300, width=16, depth=1)
    with pytest.raises(BirdieError, match="tokenizer has 256 tokens, the checkpoint's embedding"):
        with_tokenizer({"embedder.table": np.zeros((300, 16), np.float32)}, model, ByteTokenizer())
    grown = {"embedder.table": np.ones((256, 16), np.float32)}
    config = with_tokenizer(grown, model.model_copy(update={"vocab_size": 256}), ByteTokenizer())
    assert config.vocab_size == grown["embedder.table"].shape[0] == 448
    assert tokenizer_data_config("gemma.model").tokenizer == "sentencepiece"  # Gemma's tokenizer


def test_an_export_without_a_tokenizer_refuses_text_in_one_line(trained, tmp_path, capsys):
    from birdie_ssm.train.export import write_export

    to = write_export(trained.model, trained.config, tmp_path / "x", has_tokenizer=False)
    np.testing.assert_array_equal(_logits(load_run(to).model), _logits(trained.model))
    assert main(["generate", "--checkpoint", str(to), "--prompt", "ab"]) == 2
    err = capsys.readouterr().err
    assert "converted without a tokenizer" in err and err.count("\n") == 1
