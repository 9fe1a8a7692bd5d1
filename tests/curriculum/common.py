"""Shared test settings: one small birdie shape, so its jitted functions compile once per session."""

ARMS = ["ntp", "prefix", "infill_a", "infill_b", "copy"]
CLASSES = ["ntp", "prefix", "infill", "infill", "copy"]
TINY_BIRDIE = {
    "hidden": 16,
    "window": 3,
    "train_steps": 20,
    "candidates": 128,
    "top_k": 4,
    "max_transitions": 16,
}
