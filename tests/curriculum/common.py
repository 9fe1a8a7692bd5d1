"""Shared test settings: a small candidate pool keeps birdie's updates quick."""

ARMS = ["ntp", "prefix", "infill_a", "infill_b", "copy"]
CLASSES = ["ntp", "prefix", "infill", "infill", "copy"]
TINY_BIRDIE = {"candidates": 256, "top_k": 4}
