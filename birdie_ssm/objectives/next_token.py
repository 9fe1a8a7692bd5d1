"""Next-token prediction: the text is the target; the input is empty or a short prompt."""

from __future__ import annotations

from dataclasses import dataclass

from birdie_ssm.errors import check_range
from birdie_ssm.objectives.base import Objective, register_objective


@dataclass(frozen=True)
class NextTokenConfig:
    """``max_prompt``: the input is the first 0..max_prompt tokens (never the target's text)."""

    max_prompt: int = 0
    min_length: int = 8

    def __post_init__(self) -> None:
        check_range("max_prompt", self.max_prompt, 0, 1 << 20, integer=True)
        check_range("min_length", self.min_length, 1, 1 << 20, integer=True)


@register_objective("next_token")
class NextToken(Objective):
    """Generate the passage token by token (after an optional short prompt)."""

    Config = NextTokenConfig

    def min_budget(self) -> int:
        return self.config.min_length + 1  # the passage, and the paradigm token

    def make(self, tokens, rng, budget):
        n = min(len(tokens), budget)
        if n < self.config.min_length:
            return None
        prompt = int(rng.integers(0, min(self.config.max_prompt, n - 1) + 1))
        return tokens[:prompt], tokens[prompt:n], tokens[n:]
