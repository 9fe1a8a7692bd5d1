"""benchmarks/step_profile.py: kinds of work from compiled HLO and names, nested events' self
time, and a real traced train step end to end."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def step_profile():
    return load_benchmark("step_profile")


def test_kinds_from_a_compiled_cpu_module(step_profile):
    def f(w, x, buf, i):
        y = jnp.tanh(x @ w)
        return y.sum(axis=1), jax.lax.dynamic_update_slice_in_dim(buf, y[:1], i, axis=0)

    args = (jnp.ones((64, 64)), jnp.ones((32, 64)), jnp.zeros((8, 64)), 3)
    kinds = step_profile.hlo_kinds(jax.jit(f).lower(*args).compile().as_text())
    assert "matmul" in kinds.values()
    assert {"reduction", "copy / transpose"} & set(kinds.values())


def test_kinds_of_gpu_custom_calls_and_kernel_names(step_profile):
    # Lines as XLA's GPU compiler prints them: the Pallas kernel, cuBLAS, cuDNN, a fused dot.
    hlo = "\n".join(
        [
            "%fused_dot (p0: bf16[8,8], p1: bf16[8,8]) -> bf16[8,8] {",
            "  %p0 = bf16[8,8]{1,0} parameter(0)",
            "  %p1 = bf16[8,8]{1,0} parameter(1)",
            "  ROOT %dot.1 = bf16[8,8]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}",
            "}",
            "ENTRY %main.9 (a: bf16[8,8]) -> bf16[8,8] {",
            '  %custom-call.3 = bf16[8,8]{1,0} custom-call(%a), custom_call_target="__gpu$xla.'
            'gpu.triton", backend_config={"name":"linear_scan_forward"}',
            '  %cublas-gemm.1 = bf16[8,8]{1,0} custom-call(%a, %a), custom_call_target="__cub'
            'las$gemm"',
            '  %custom-call.4 = bf16[8,8]{1,0} custom-call(%a), custom_call_target="__cudnn$fmh'
            'aSoftmax"',
            "  %gemm_fusion = bf16[8,8]{1,0} fusion(%a, %a), kind=kCustom, calls=%fused_dot",
            "  ROOT %add.2 = bf16[8,8]{1,0} add(%a, %a)",
            "}",
        ]
    )
    kinds = step_profile.hlo_kinds(hlo)
    assert kinds["custom-call.3"] == "scan kernel"
    assert kinds["cublas-gemm.1"] == "matmul"
    assert kinds["custom-call.4"] == "attention"
    assert kinds["gemm_fusion"] == "matmul"
    assert "add.2" not in kinds  # element-wise ops fall to the name rule
    assert step_profile.kind_of("sm90_xmma_gemm_bf16bf16_bf16f32") == "matmul"
    assert step_profile.kind_of("loop_convert_fusion_3") == step_profile.OTHER


def test_nested_events_count_their_own_time_only(step_profile):
    def event(name, start, end):
        return SimpleNamespace(
            name=name, start_ns=start, end_ns=end, duration_ns=end - start, stats=[]
        )

    events = [
        event("ThunkExecutor::Execute", 0, 100),
        event("while.1", 10, 60),
        event("fusion.2", 20, 30),
        event("fusion.3", 40, 55),
        event("dot.4", 70, 90),
        event("ThreadpoolListener::Record", 0, 0),
        event("SlinkyThreadPool::Await", 90, 99),
    ]
    assert dict(step_profile._self_times(events)) == pytest.approx(
        {
            "ThunkExecutor::Execute": 30e-9,
            "while.1": 25e-9,
            "fusion.2": 10e-9,
            "fusion.3": 15e-9,
            "dot.4": 20e-9,
        }
    )


@pytest.mark.slow  # profiles a compiled train step
def test_a_traced_train_step_end_to_end(step_profile, monkeypatch, capsys):
    argv = ["step_profile.py", "--steps", "1", "--top", "3"]
    sizes = ["model.depth=2", "data.seq_len=64"]
    monkeypatch.setattr(sys, "argv", argv + [a for s in sizes for a in ("--set", s)])
    step_profile.main()
    out = capsys.readouterr().out
    assert "gated-125m on cpu, 1 traced steps" in out
    shares = {
        line.split()[0]: float(line.split()[-1].rstrip("%"))
        for line in out.splitlines()
        if line.strip().startswith(("matmul", "other", "copy", "reduction"))
    }
    assert shares["matmul"] > 5 and sum(shares.values()) == pytest.approx(100, abs=0.5)
    assert out.count("calls/step") == 1 and len(out.splitlines()) >= 8


def test_unknown_preset_is_one_line(step_profile, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["step_profile.py", "--preset", "nope"])
    with pytest.raises(SystemExit) as exit_info:
        step_profile.main()
    assert str(exit_info.value.code).startswith("error: unknown preset 'nope' (known: ")
