"""When validation (and so the controller) runs during training."""

from __future__ import annotations

from birdie_ssm.errors import BirdieError

BIRDIE_SCHEDULE = (10, 50, 250, 500, 1000, 1500, 2000)


def eval_steps(
    total_steps: int, kind: str = "birdie", every: int = 1000, scale: float = 1.0
) -> list[int]:
    """Sorted steps (1-based, <= total_steps) after which validation runs; always includes the last.

    ``birdie``: 10, 50, 250, 500, 1000, 1500, 2000, then every 1000, each multiplied by ``scale``.
    ``every``: every ``every`` steps.
    """
    if total_steps < 1:
        raise BirdieError(f"eval schedule needs total_steps >= 1, got {total_steps}")
    if kind == "birdie":
        if scale <= 0:
            raise BirdieError(f"eval schedule 'birdie' needs scale > 0, got {scale}")
        points = list(BIRDIE_SCHEDULE)
        while points[-1] * scale < total_steps:
            points.append(points[-1] + 1000)
        steps = {max(1, round(p * scale)) for p in points}
    elif kind == "every":
        if every < 1:
            raise BirdieError(f"eval schedule 'every' needs every >= 1, got {every}")
        steps = set(range(every, total_steps + 1, every))
    else:
        raise BirdieError(f"unknown eval schedule '{kind}'; expected 'birdie' or 'every'")
    steps = {s for s in steps if s <= total_steps}
    steps.add(total_steps)
    return sorted(steps)
