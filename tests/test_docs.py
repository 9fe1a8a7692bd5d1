"""The README and docs/ show commands and code that run as written."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from birdie_ssm.cli import _parser, main
from birdie_ssm.config import ObjectiveEntry, load_config
from birdie_ssm.objectives import expand_arms
from birdie_ssm.text.tokenizer import ByteTokenizer

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def _commands() -> list[tuple[str, str]]:
    """Every ``birdie-ssm ...`` command in a bash block of README.md and docs/*.md."""
    found = []
    for page in PAGES:
        for block in _blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                for part in re.split(r"&&|\|", line.split(" #")[0]):
                    part = part.strip()
                    if part.startswith("birdie-ssm "):
                        found.append((page.name, part))
    return found


def test_the_pages_show_commands():
    pages = {page for page, _ in _commands()}
    assert {"README.md", "training.md", "evaluation.md", "weights.md"} <= pages


@pytest.mark.parametrize(("page", "command"), _commands())
def test_every_shown_command_parses(page, command):
    args = shlex.split(command)[1:]
    try:
        _parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{page}: `{command}` does not parse ({exc})")


def test_the_readme_config_is_valid():
    block = next(b for b in _blocks(ROOT / "README.md", "yaml") if "objectives:" in b)
    raw = yaml.safe_load(block)
    overrides = [f"{section}={yaml.safe_dump(value, default_flow_style=True).strip()}"
                 for section, value in raw.items()]  # fmt: skip
    config = load_config(None, overrides)
    assert config.model.mixer == "mamba" and len(config.data.sources) == 2


def test_the_objectives_command_lists_every_objective(capsys):
    assert main(["objectives"]) in (0, None)
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("next_token", "infilling", "selective_copying"))


def test_the_custom_objective_example_works():
    block = _blocks(ROOT / "docs" / "objectives.md", "python")[0]
    exec(compile(block, "docs/objectives.md", "exec"), {"__name__": "docs_objectives"})
    tok = ByteTokenizer()
    arms = expand_arms([ObjectiveEntry(name="reverse", params={"length": [4, 8]})], tok.specials)
    assert [a.name for a in arms] == ["reverse[length=4]", "reverse[length=8]"]
    tokens = tok.encode("abcdefghijklmnop")
    example, rest = arms[1].objective.sample(tokens, np.random.default_rng(0), 64)
    body = example.input_ids[example.input_ids < 256]
    assert tok.decode(body) == "abcdefgh"
    assert tok.decode(example.target_ids) == "hgfedcba"
    assert tok.decode(rest) == "ijklmnop"
