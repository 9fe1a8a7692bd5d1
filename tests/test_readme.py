"""The README's custom objective runs as printed."""

import re
from pathlib import Path

import numpy as np

from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.objectives import expand_arms
from birdie_ssm.text.tokenizer import ByteTokenizer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_custom_objective_example_works():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(block.splitlines()) < 30
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_objectives"})
    tok = ByteTokenizer()
    arms = expand_arms([ObjectiveEntry(name="reverse", params={"length": [4, 8]})], tok.specials)
    assert [a.name for a in arms] == ["reverse[length=4]", "reverse[length=8]"]
    tokens = tok.encode("abcdefghijklmnop")
    example, rest = arms[1].objective.sample(tokens, np.random.default_rng(0), 64)
    body = example.input_ids[example.input_ids < 256]
    assert tok.decode(body) == "abcdefgh"
    assert tok.decode(example.target_ids) == "hgfedcba"
    assert tok.decode(rest) == "ijklmnop"
