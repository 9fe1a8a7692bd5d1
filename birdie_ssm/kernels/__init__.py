"""Linear-recurrence kernels behind one entry point, ``linear_scan``."""

from birdie_ssm.kernels.dispatch import COMPLEX_IMPLS, IMPLS, auto_impl, linear_scan
from birdie_ssm.kernels.vjp import carry_dtype

__all__ = ["COMPLEX_IMPLS", "IMPLS", "auto_impl", "carry_dtype", "linear_scan"]
