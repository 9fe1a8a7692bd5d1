"""Linear-recurrence kernels behind one entry point, ``linear_scan``."""

from birdie_ssm.kernels.dispatch import IMPLS, auto_impl, linear_scan

__all__ = ["IMPLS", "auto_impl", "linear_scan"]
