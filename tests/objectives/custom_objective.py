"""A custom objective registered from a user module (used by the plug-in tests and train tests).

Import it as ``tests.objectives.custom_objective`` (list that in ``objectives.modules``).
"""

from dataclasses import dataclass

from birdie_ssm.objectives import Objective, register_objective


@dataclass(frozen=True)
class ReverseConfig:
    length: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.length <= 4096:
            raise ValueError(f"parameter 'length' must lie in [1, 4096], got {self.length}")


@register_objective("test_reverse")
class Reverse(Objective):
    """Read a passage, then generate it backwards."""

    Config = ReverseConfig

    def make(self, tokens, rng, budget):
        n = min(self.config.length, budget // 2)
        if len(tokens) < n or n < 1:
            return None
        return tokens[:n], tokens[:n][::-1], tokens[n:]
