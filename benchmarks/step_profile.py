"""Where the train step's time goes: a profiler trace of a few steps, summed by kind of work.

    python benchmarks/step_profile.py [--preset gated-125m] [--steps 5] [--top 15]
                                      [--set key=value ...] [--keep DIR]

Runs ``--steps`` jitted train steps of a preset (benchmarks/train.py's sizes for this backend)
under ``jax.profiler.trace`` and reads the trace back with ``jax.profiler.ProfileData``. On a
GPU it sums the device's kernels; on a CPU, XLA's ops on the host's compute threads. Prints the
busy time per step against the step's wall time (the rest is launch gaps and host work), the
share of each kind of work (matmuls, the scan kernel, attention, copies, reductions, other
fused element-wise work) and the ops that take the most. ``--keep DIR`` keeps the trace for
TensorBoard or Perfetto.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import draw_batches, on_devices, preset_trainer, run_steps  # noqa: E402

# By name, where the compiled HLO does not know an event: first match wins, lower-cased.
KINDS = (
    ("scan kernel", ("linear_scan",)),
    ("attention", ("cudnn", "fmha", "flash", "sdpa", "dot_product_attention")),
    ("matmul", ("gemm", "cublas", "nvjet", "xmma", "cutlass", "matmul")),
    ("copy / transpose", ("copy", "transpose", "memcpy", "memset", "dynamic-update-slice")),
    ("collective", ("all-reduce", "all-gather", "reduce-scatter", "nccl")),
    ("reduction", ("reduce",)),
)
OTHER = "other fused element-wise"
# Host-side bookkeeping the CPU runtime records beside the ops; not work.
NOT_WORK = ("threadpool", "await", "end:", "wait", "schedule")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?\b([a-z][\w\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
_OPCODES = {
    "dot": "matmul",
    "convolution": "matmul",
    "copy": "copy / transpose",
    "transpose": "copy / transpose",
    "dynamic-update-slice": "copy / transpose",
    "all-reduce": "collective",
    "all-gather": "collective",
    "reduce-scatter": "collective",
    "reduce": "reduction",
}


@dataclass(frozen=True)
class OpTime:
    """One op's total time in the trace."""

    name: str
    kind: str
    count: int
    seconds: float


def kind_of(name: str) -> str:
    """The kind of work an op does, from its kernel or HLO name alone."""
    lowered = name.lower()
    for kind, marks in KINDS:
        if any(mark in lowered for mark in marks):
            return kind
    return OTHER


def hlo_kinds(hlo_text: str) -> dict[str, str]:
    """Kind of work of each instruction of a compiled module (``Compiled.as_text()``): a fusion
    by what it fuses (any dot makes it a matmul), a custom call by its target."""
    bodies: dict[str, list[tuple[str, str, str]]] = {}
    current: list[tuple[str, str, str]] = []
    for line in hlo_text.splitlines():
        if head := _COMPUTATION.match(line):
            current = bodies.setdefault(head.group(1), [])
        elif op := _INSTRUCTION.match(line):
            current.append((op.group(1), op.group(2), line))

    def fused_kind(computation: str) -> str:
        opcodes = {opcode for _, opcode, _ in bodies.get(computation, [])}
        for opcode in ("dot", "convolution", "all-reduce", "reduce", "dynamic-update-slice"):
            if opcode in opcodes:
                return _OPCODES[opcode]
        roots = [o for _, o, line in bodies.get(computation, []) if "ROOT" in line]
        return _OPCODES.get(roots[0], OTHER) if roots else OTHER

    kinds = {}
    for instructions in bodies.values():
        for name, opcode, line in instructions:
            if opcode == "fusion" and (called := re.search(r"calls=%?([\w.\-]+)", line)):
                kinds[name] = fused_kind(called.group(1))
            elif opcode == "custom-call":
                target = re.search(r'custom_call_target="([^"]*)"', line)
                text = (target.group(1) if target else "") + line
                pallas = "triton" in text.lower() or "linear_scan" in text
                kinds[name] = "scan kernel" if pallas else kind_of(text)
            elif opcode in _OPCODES:
                kinds[name] = _OPCODES[opcode]
    return kinds


def _event_name(event) -> str:
    """The HLO instruction an event ran where the trace says so, else the event's own name."""
    stats = dict(event.stats)
    if isinstance(stats.get("hlo_op"), str) and stats["hlo_op"]:
        return stats["hlo_op"]
    if isinstance(stats.get("long_name"), str) and "=" in stats["long_name"]:
        return stats["long_name"].split("=")[0].strip().lstrip("%")
    return event.name


def _self_times(events) -> list[tuple[str, float]]:
    """(name, seconds) of each event less the events nested inside it on the same line (the CPU
    runtime nests an op's work inside its loop's and its executor's events; GPU kernels do not
    nest)."""
    spans = sorted(
        (e.start_ns, -e.end_ns, _event_name(e))
        for e in events
        if e.duration_ns > 0 and not any(m in e.name.lower() for m in NOT_WORK)
    )
    selves: list[list] = []
    open_: list[tuple[float, int]] = []  # (end, index into selves) of enclosing events
    for start, neg_end, name in spans:
        end = -neg_end
        while open_ and open_[-1][0] <= start:
            open_.pop()
        if open_:
            selves[open_[-1][1]][1] -= min(end, open_[-1][0]) - start
        selves.append([name, end - start])
        open_.append((end, len(selves) - 1))
    return [(name, ns * 1e-9) for name, ns in selves if ns > 0]


def op_times(trace_dir: Path, kinds: dict[str, str]) -> list[OpTime]:
    """Device kernels (or, without a device plane, the host's XLA ops) summed by name; each op's
    kind from ``kinds`` (``hlo_kinds``), else from its name."""
    from jax.profiler import ProfileData

    paths = sorted(trace_dir.rglob("*.xplane.pb"))
    if not paths:
        raise RuntimeError(f"no trace written under {trace_dir}")
    data = ProfileData.from_file(str(paths[-1]))
    planes = [p for p in data.planes if p.name.startswith("/device:")]
    if planes:
        lines = [line for plane in planes for line in plane.lines]
        # Kernels run on the stream lines; derived lines (modules, ops, steps) would count twice.
        lines = [line for line in lines if line.name.startswith("Stream")] or lines
    else:
        host = [p for p in data.planes if p.name == "/host:CPU"]
        lines = [line for p in host for line in p.lines if line.name.startswith("tf_XLA")]
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for line in lines:
        for name, seconds in _self_times(line.events):
            totals[name][0] += 1
            totals[name][1] += seconds
    if not totals:
        planes = ", ".join(p.name for p in data.planes)
        raise RuntimeError(f"the trace holds no ops (planes: {planes}; on a GPU, is CUPTI there?)")
    ops = [OpTime(n, kinds.get(n) or kind_of(n), int(c), s) for n, (c, s) in totals.items()]
    return sorted(ops, key=lambda op: -op.seconds)


def report(ops: list[OpTime], steps: int, wall_s: float, top: int) -> str:
    """Busy time against wall time, the share of each kind of work, and the top ops."""
    busy = sum(op.seconds for op in ops)
    kinds: dict[str, float] = collections.defaultdict(float)
    for op in ops:
        kinds[op.kind] += op.seconds
    out = [
        f"per step: wall {wall_s / steps * 1e3:.2f} ms, ops busy {busy / steps * 1e3:.2f} ms "
        f"({busy / wall_s:.0%} of wall; on a CPU the ops of two threads can overlap)",
        f"  {'kind of work':<26} {'ms/step':>9} {'share':>7}",
    ]
    for kind, seconds in sorted(kinds.items(), key=lambda kv: -kv[1]):
        out.append(f"  {kind:<26} {seconds / steps * 1e3:9.3f} {seconds / busy:7.1%}")
    out.append(f"  top {top} ops: {'ms/step':>9} {'share':>7} {'calls/step':>10}  kind, name")
    for op in ops[:top]:
        out.append(
            f"  {'':<10} {op.seconds / steps * 1e3:9.3f} {op.seconds / busy:7.1%} "
            f"{op.count / steps:10.1f}  {op.kind}, {op.name[:90]}"
        )
    return "\n".join(out)


def profile(
    preset: str, steps: int, overrides: list[str], keep: Path | None
) -> tuple[list[OpTime], float]:
    """Trace ``steps`` train steps of ``preset`` after warming up; (ops, wall seconds)."""
    with preset_trainer(preset, overrides) as trainer:
        batches = on_devices(trainer, draw_batches(trainer, steps))
        step = trainer.run.train_step.lower(trainer.params, trainer.opt_state, batches[0])
        step = step.compile()
        state = run_steps(step, trainer.params, trainer.opt_state, batches[:1])
        with tempfile.TemporaryDirectory() as scratch:
            trace_dir = keep or Path(scratch)
            with jax.profiler.trace(str(trace_dir)):
                start = time.perf_counter()
                run_steps(step, *state, batches)
                wall_s = time.perf_counter() - start
            return op_times(trace_dir, hlo_kinds(step.as_text())), wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gated-125m")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--keep", type=Path, default=None, help="keep the trace in this folder")
    args = parser.parse_args()
    if args.steps < 1 or args.top < 1:
        parser.error("--steps and --top must be at least 1")
    try:
        ops, wall_s = profile(args.preset, args.steps, args.overrides, args.keep)
    except (ValueError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
    print(f"{args.preset} on {jax.default_backend()}, {args.steps} traced steps")
    print(report(ops, args.steps, wall_s, args.top))


if __name__ == "__main__":
    main()
