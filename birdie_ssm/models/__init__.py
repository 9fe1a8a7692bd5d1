"""Model family: the bidirectional-to-causal SSM ``BirdieLM`` and a prefix-LM Transformer."""

from birdie_ssm.models.decode import generate
from birdie_ssm.models.lm import BirdieLM, build_model, count_params
from birdie_ssm.models.transformer import TransformerLM

__all__ = ["BirdieLM", "TransformerLM", "build_model", "count_params", "generate"]
