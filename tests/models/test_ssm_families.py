"""Mamba, S4D, S5 and LRU against float64 NumPy loops written from their papers' equations.

Each mixer's whole forward pass (projections, discretization, recurrence, read-out) is
recomputed here one time step at a time, on a packed batch with two segments and prefixes, both
causal and with bidirectional halves (the reverse half restarts wherever the next position is
not in the same prefix): values, and directional derivatives against central differences of the
loop (every parameter and the input at once). Initialisations are checked against their
definitions; bad parameters give one-line errors naming the key.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.kernels import linear_scan
from birdie_ssm.models import attention, build_model, count_params, get_mixer
from birdie_ssm.models.masks import make_context
from birdie_ssm.train.flops import config_flops_per_token
from tests.helpers import TRITON_CALL, target_gpu

WIDTH, LENGTH = 8, 11
# Row 0: [prefix 0-3 | target 4-6] [prefix 7-8 | target 9-10]; row 1: one causal segment.
SEGMENTS = np.array([[1] * 7 + [2] * 4, [3] * 11])
PREFIX = np.array([[1] * 4 + [0] * 3 + [1] * 2 + [0] * 2, [0] * 11], bool)
# (mixer, its parameters); Mamba and S4D scan in chunks of 4: three chunks, the last padded.
CASES = {
    "mamba": {"state_size": 3, "chunk": 4},
    "s4d": {"state_size": 6, "chunk": 4, "init": "lin"},
    "s5": {"state_size": 6, "discretization": "bilinear", "blocks": 2},
    "lru": {"state_size": 6, "r_min": 0.5},
}


# ---------------------------------------------------------------- float64 NumPy, step by step


def _gelu(x):  # jax.nn.gelu's default, the tanh approximation
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _silu(x):
    return x / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


def _complex(p):
    return p[..., 0] + 1j * p[..., 1]


def _glu(y, p):
    value, gate = np.split(_gelu(y) @ p["out"]["proj"]["kernel"], 2, axis=-1)
    return value / (1 + np.exp(-gate))


def _carries(b: int, t: int, reverse: bool) -> bool:
    """Whether the state flows into step t from its neighbour (t-1, or t+1 when reverse)."""
    if not reverse:
        return t > 0 and SEGMENTS[b, t] == SEGMENTS[b, t - 1]
    return (
        t + 1 < LENGTH
        and PREFIX[b, t]
        and PREFIX[b, t + 1]
        and SEGMENTS[b, t] == SEGMENTS[b, t + 1]
    )


def _recur(decay, drive, reverse: bool):
    """h_t = decay_t * h_neighbour + drive_t over axis 1 of [B, L, ...], restarting per
    ``_carries``."""
    out = np.zeros(np.broadcast_shapes(decay.shape, drive.shape), complex)
    for b in range(out.shape[0]):
        h = 0
        for t in range(LENGTH - 1, -1, -1) if reverse else range(LENGTH):
            h = (decay[b, t] * h if _carries(b, t, reverse) else 0) + drive[b, t]
            out[b, t] = h
    return out


def _halves(decay, drive, bidirectional: bool, axis: int):
    """Forward recurrence over the first half of ``axis`` (the state axis, after [B, L]), reverse
    over the second when bidirectional."""
    if not bidirectional:
        return _recur(decay, drive, False)
    half = drive.shape[axis] // 2
    take = lambda x, s: np.take(x, range(*s.indices(x.shape[axis])), axis=axis)  # noqa: E731
    fwd = _recur(take(decay, slice(0, half)), take(drive, slice(0, half)), False)
    rev = _recur(take(decay, slice(half, None)), take(drive, slice(half, None)), True)
    return np.concatenate([fwd, rev], axis=axis)


def mamba_np(p, x, bidirectional):
    u, z = np.split(x @ p["in_proj"]["kernel"], 2, axis=-1)
    kernel, k = p["conv"]["kernel"], p["conv"]["kernel"].shape[0]
    conv = np.zeros_like(u)
    for b in range(u.shape[0]):
        for t in range(LENGTH):
            for lag in range(k):
                if t - lag >= 0 and SEGMENTS[b, t - lag] == SEGMENTS[b, t]:
                    conv[b, t] += kernel[k - 1 - lag] * u[b, t - lag]
    u = _silu(conv + p["conv"]["bias"])
    rank, n = p["dt_proj"].shape[0], p["a_log"].shape[1]
    dt, bmat, cmat = np.split(u @ p["x_proj"]["kernel"], [rank, rank + n], axis=-1)
    delta = _softplus(dt @ p["dt_proj"] + p["dt_bias"])  # [B, L, C]
    a = -np.exp(p["a_log"])  # [C, N]
    decay = np.exp(delta[..., None] * a)  # zero-order hold
    drive = (delta * u)[..., None] * bmat[:, :, None, :]  # Δ B x
    h = _halves(decay, drive, bidirectional, axis=2).real
    y = np.einsum("btcn,btn->btc", h, cmat) + p["d"] * u
    return (y * _silu(z)) @ p["out"]["kernel"]


def _discretize(lam, dt, method):
    if method == "zoh":
        return np.exp(dt * lam), (np.exp(dt * lam) - 1) / lam
    return (1 + dt * lam / 2) / (1 - dt * lam / 2), dt / (1 - dt * lam / 2)


def s4d_np(p, x, bidirectional, method="zoh"):
    lam = -np.exp(p["a_re_log"]) + 1j * p["a_im"]  # [C, N/2]
    lam_bar, factor = _discretize(lam, np.exp(p["log_dt"])[:, None], method)
    drive = x[..., None] * (factor * _complex(p["b"]))
    h = _halves(np.broadcast_to(lam_bar, drive.shape), drive, bidirectional, axis=2)
    y = 2 * np.einsum("btcn,cn->btc", h, _complex(p["c"])).real + p["d"] * x
    return _glu(y, p)


def s5_np(p, x, bidirectional, method="bilinear"):
    lam = -np.exp(p["lam_re_log"]) + 1j * p["lam_im"]  # [P]
    lam_bar, factor = _discretize(lam, np.exp(p["log_dt"]), method)
    drive = x @ (factor[:, None] * _complex(p["b"])).T  # B_bar u, [B, L, P]
    h = _halves(np.broadcast_to(lam_bar, drive.shape), drive, bidirectional, axis=2)
    y = 2 * (h @ _complex(p["c"]).T).real + p["d"] * x
    return _glu(y, p)


def lru_np(p, x, bidirectional):
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))  # [N]
    drive = np.exp(p["gamma_log"]) * (x @ _complex(p["b"]).T)  # γ ⊙ B u
    h = _halves(np.broadcast_to(lam, drive.shape), drive, bidirectional, axis=2)
    y = (h @ _complex(p["c"]).T).real + p["d"] * x
    return _glu(y, p)


NUMPY = {"mamba": mamba_np, "s4d": s4d_np, "s5": s5_np, "lru": lru_np}


# ---------------------------------------------------------------- the JAX mixers


def _mixer(name: str, bidirectional: bool, scan_impl: str = "auto"):
    config = ModelConfig(
        mixer=name, width=WIDTH, depth=2, mixers={name: CASES[name]}, scan_impl=scan_impl
    )
    return get_mixer(name)(config, config.mixer_config(name), bidirectional, rngs=nnx.Rngs(3))


# The bidirectional layer covers both directions and the resets; the causal one runs with -m slow.
CASE_PARAMS = [
    pytest.param((name, bidirectional), marks=() if bidirectional else pytest.mark.slow)
    for name in CASES
    for bidirectional in (True, False)
]


@pytest.fixture(
    scope="module",
    params=CASE_PARAMS,
    ids=lambda c: f"{c[0]}-{'bidirectional' if c[1] else 'causal'}",
)
def case(request):
    """(name, bidirectional, float64 parameters, x, weights, JAX value and gradient, treedef)."""
    name, bidirectional = request.param
    graphdef, state = nnx.split(_mixer(name, bidirectional))
    leaves, treedef = jax.tree.flatten(state)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, LENGTH, WIDTH))
    w = rng.normal(size=(2, LENGTH, WIDTH))
    ctx = make_context(SEGMENTS.shape, jnp.asarray(PREFIX), jnp.asarray(SEGMENTS))

    @jax.jit
    def loss(leaves, x):
        y, _ = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(x, ctx)
        return jnp.sum(y * jnp.asarray(w, jnp.float32)), y

    (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        leaves, jnp.asarray(x, jnp.float32)
    )
    params = [np.asarray(leaf, np.float64) for leaf in leaves]
    return name, bidirectional, params, x, w, np.asarray(y), grads, treedef


def _numpy_out(name, bidirectional, params, x, treedef):
    pure = nnx.to_pure_dict(jax.tree.unflatten(treedef, params))
    return NUMPY[name](pure, x, bidirectional)


def test_forward_matches_the_float64_loop(case):
    name, bidirectional, params, x, _, y, _, treedef = case
    want = _numpy_out(name, bidirectional, params, x, treedef)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_gradients_match_central_differences_of_the_loop(case):
    """<grad, v> for one random direction v over every parameter and the input at once."""
    name, bidirectional, params, x, w, _, (g_params, g_x), treedef = case
    rng = np.random.default_rng(1)
    v_params = [rng.normal(size=p.shape) for p in params]
    v_x = rng.normal(size=x.shape)
    eps = 1e-6

    def loss(sign):
        moved = [p + sign * eps * v for p, v in zip(params, v_params, strict=True)]
        return np.sum(_numpy_out(name, bidirectional, moved, x + sign * eps * v_x, treedef) * w)

    numeric = (loss(1) - loss(-1)) / (2 * eps)
    analytic = sum(
        float(np.sum(np.asarray(g, np.float64) * v))
        for g, v in zip([*g_params, g_x], [*v_params, v_x], strict=True)
    )
    assert analytic == pytest.approx(numeric, rel=2e-3)


def test_chunk_and_scan_implementation_do_not_change_the_output(case):
    """One chunk for the whole row, and the associative scan, give the same output."""
    name, bidirectional, params, x, _, y, _, treedef = case
    mixer = _mixer(name, bidirectional, scan_impl="associative")
    if not hasattr(mixer, "chunk"):
        pytest.skip("no chunks; the kernels' own tests compare the scan implementations")
    mixer.chunk = 64  # one chunk holds the whole row
    nnx.update(mixer, jax.tree.unflatten(treedef, [jnp.asarray(p, jnp.float32) for p in params]))
    ctx = make_context(SEGMENTS.shape, jnp.asarray(PREFIX), jnp.asarray(SEGMENTS))
    other, _ = mixer(jnp.asarray(x, jnp.float32), ctx)
    np.testing.assert_allclose(np.asarray(other), y, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- initialisations


def _hippo_normal_eigenvalues(size: int) -> np.ndarray:
    """From the definitions: HiPPO-LegS A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k),
    0 (n < k), plus P P^T with P_n = sqrt(n + 1/2)."""
    a = np.zeros((size, size))
    for n in range(size):
        for k in range(size):
            if n > k:
                a[n, k] = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1)
            elif n == k:
                a[n, k] = -(n + 1)
    p = np.sqrt(np.arange(size) + 0.5)
    return np.linalg.eigvals(a + np.outer(p, p))


def _by_frequency(values) -> np.ndarray:
    values = np.asarray(values)
    return values[np.argsort(values.imag)]


def _build(name: str, **params):
    config = ModelConfig(mixer=name, width=16, depth=2, mixers={name: params})
    return get_mixer(name)(config, config.mixer_config(name), False, rngs=nnx.Rngs(0))


def test_mamba_init_delta_range_and_s4d_real_a():
    mixer = _build("mamba", state_size=5, expand=8, dt_min=0.002, dt_max=0.05)
    delta = np.asarray(jax.nn.softplus(mixer.dt_bias[...]))
    assert delta.min() >= 0.002 * (1 - 1e-5) and delta.max() <= 0.05 * (1 + 1e-5)
    # Log-uniform over 128 channels: both ends of the range are reached within a factor of 2.
    assert delta.min() < 0.004 and delta.max() > 0.025
    np.testing.assert_allclose(-np.exp(mixer.a_log[...]), -np.tile(np.arange(1, 6), (128, 1)))


@pytest.mark.parametrize("init", ["lin", "inv", "legs"])
def test_s4d_init_eigenvalues(init):
    mixer = _build("s4d", state_size=8, init=init, dt_min=0.01, dt_max=0.2)
    lam = -np.exp(np.asarray(mixer.a_re_log[...])) + 1j * np.asarray(mixer.a_im[...])
    n, size = np.arange(4), 8
    want = {
        "lin": -0.5 + 1j * np.pi * n,
        "inv": -0.5 + 1j * size / np.pi * (size / (2 * n + 1) - 1),
        "legs": [v for v in _hippo_normal_eigenvalues(size) if v.imag > 0],
    }[init]
    for row in lam:  # every channel starts alike
        np.testing.assert_allclose(_by_frequency(row), _by_frequency(want), rtol=1e-5, atol=1e-6)
    dt = np.exp(np.asarray(mixer.log_dt[...]))
    assert dt.min() >= 0.01 * (1 - 1e-5) and dt.max() <= 0.2 * (1 + 1e-5)


def test_s5_init_is_hippo_n_per_block():
    mixer = _build("s5", state_size=12, blocks=3)
    lam = -np.exp(np.asarray(mixer.lam_re_log[...])) + 1j * np.asarray(mixer.lam_im[...])
    want = _by_frequency([v for v in _hippo_normal_eigenvalues(8) if v.imag > 0])
    for block in lam.reshape(3, 4):
        np.testing.assert_allclose(_by_frequency(block), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lam.real, -0.5, rtol=1e-6)


def test_lru_init_on_the_ring():
    mixer = _build("lru", state_size=4096, r_min=0.4, r_max=0.9, max_phase=math.pi)
    radius = np.exp(-np.exp(np.asarray(mixer.nu_log[...], np.float64)))
    phase = np.exp(np.asarray(mixer.theta_log[...], np.float64))
    assert radius.min() >= 0.4 - 1e-6 and radius.max() <= 0.9 + 1e-6
    assert phase.min() >= 0 and phase.max() <= math.pi + 1e-6
    # |λ|² uniform on [r_min², r_max²] (uniform over the ring's area): its mean and quartiles.
    np.testing.assert_allclose(np.mean(radius**2), (0.16 + 0.81) / 2, atol=0.01)
    np.testing.assert_allclose(
        np.quantile(radius**2, [0.25, 0.75]), [0.16 + 0.65 / 4, 0.16 + 0.65 * 3 / 4], atol=0.02
    )
    gamma = np.exp(np.asarray(mixer.gamma_log[...], np.float64))
    np.testing.assert_allclose(gamma, np.sqrt(1 - radius**2), rtol=1e-4)


# ---------------------------------------------------------------- bad input, FLOPs


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.mixers.mamba.state_size=0", "state_size"),
        ("model.mixers.mamba.expand=100", "expand"),
        ("model.mixers.mamba.dt_min=0", "dt_min"),
        ("model.mixers.mamba.dt_max=0.0001", "dt_max"),
        ("model.mixers.s4d.discretization=euler", "discretization"),
        ("model.mixers.s4d.init=hippo", "init"),
        ("model.mixers.s4d.state_size=7", "state_size"),
        ("model.mixers.s5.blocks=5", "blocks"),
        ("model.mixers.lru.r_min=1.5", "r_min"),
        ("model.mixers.lru.r_max=1.0", "r_max"),
        ("model.scan_impl=pallas", "model.scan_impl"),
    ],
)
def test_bad_parameters_name_the_key_in_one_line(override, key):
    mixer = override.split(".")[2] if override.startswith("model.mixers") else "lru"
    with pytest.raises(BirdieError) as error:
        load_config(None, [f"model.mixer={mixer}", override])
    message = str(error.value)
    assert key in message and "\n" not in message


def test_a_complex_scan_refuses_the_pallas_kernel():
    a = jnp.full((1, 3, 2), 0.5 + 0.1j, jnp.complex64)
    with pytest.raises(ValueError, match="'pallas' cannot carry a complex recurrence"):
        linear_scan(a, a, impl="pallas")
    with pytest.raises(ValueError, match="both real or both complex"):
        linear_scan(a.real, a, impl="sequential")


def test_flop_count_covers_the_recurrences():
    """Hand counts per token (training = 3x forward): Mamba 6 FLOPs per state and channel, the
    complex recurrences 8 per complex state (LRU 10, with γ)."""
    counts = {
        "mamba": (dict(state_size=16, expand=2), 2 * 3 * 6 * (2 * 64) * 16),
        "s4d": (dict(state_size=8), 2 * 3 * 8 * 64 * 4),
        "s5": (dict(state_size=32), 2 * 3 * 8 * 32),
        "lru": (dict(state_size=32), 2 * 3 * 10 * 32),
    }
    for name, (params, want) in counts.items():
        config = ModelConfig(mixer=name, width=64, depth=2, mixers={name: params})
        assert config_flops_per_token(config, 256, 128).recurrence == want, name


@pytest.mark.parametrize("impl", ["reference", "associative", "sequential"])
@pytest.mark.parametrize("reverse", [False, True])
def test_complex_linear_scan_and_its_gradient(impl, reverse):
    """h_t = a_t h_{t-1} + b_t in complex numbers against the loop, and the gradient of a real
    loss with respect to the real and imaginary parts against central differences."""
    rng = np.random.default_rng(2)
    shape = (2, 5, 3)
    a = rng.uniform(0.3, 0.95, shape) * np.exp(1j * rng.uniform(-3, 3, shape))
    b = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    w = rng.normal(size=shape) + 1j * rng.normal(size=shape)

    def loop(a, b):
        h, out = np.zeros((2, 3), complex), np.zeros(shape, complex)
        for t in range(4, -1, -1) if reverse else range(5):
            h = a[:, t] * h + b[:, t]
            out[:, t] = h
        return out

    def loss(parts):
        ar, ai, br, bi = (jnp.asarray(p, jnp.float32) for p in parts)
        decay, drive = jax.lax.complex(ar, ai), jax.lax.complex(br, bi)
        h = linear_scan(decay, drive, reverse=reverse, impl=impl)
        return jnp.sum(h * jnp.asarray(w, jnp.complex64)).real, h

    parts = [a.real, a.imag, b.real, b.imag]
    (_, h), grads = jax.value_and_grad(loss, has_aux=True)(parts)
    np.testing.assert_allclose(np.asarray(h), loop(a, b), rtol=1e-5, atol=1e-5)
    v = [rng.normal(size=shape) for _ in parts]
    eps = 1e-6

    def numpy_loss(sign):
        ar, ai, br, bi = (p + sign * eps * d for p, d in zip(parts, v, strict=True))
        return np.sum(loop(ar + 1j * ai, br + 1j * bi) * w).real

    numeric = (numpy_loss(1) - numpy_loss(-1)) / (2 * eps)
    analytic = sum(float(np.sum(np.asarray(g) * d)) for g, d in zip(grads, v, strict=True))
    assert analytic == pytest.approx(numeric, rel=1e-4)


@pytest.mark.parametrize(
    ("preset", "millions", "attention"),
    [("mamba-130m", 115.7, 0), ("jamba-125m", 123.6, 2)],
)
def test_presets_build(preset, millions, attention):
    """The presets build (abstractly) at a 32k vocabulary; the hybrid is 7 : 1 Mamba : attention."""
    path = Path(__file__).parents[2] / "configs" / "models" / f"{preset}.yaml"
    config = load_config(path).model
    model = nnx.eval_shape(lambda: build_model(config, 32768, nnx.Rngs(0)))
    assert count_params(model) / 1e6 == pytest.approx(millions, abs=0.1)
    kinds = config.layer_kinds()
    assert kinds.count("attention") == attention
    assert kinds.count("mamba") == len(kinds) - attention


def test_mamba_gradient_lowers_through_triton(monkeypatch):
    """Mamba's recurrence is real and diagonal: its chunked scan (3 chunks, the last padded, one
    layer bidirectional) lowers for CUDA through the Pallas Triton kernels, forward and backward."""
    monkeypatch.setenv(attention.IMPL_ENV, "xla")
    small = ["model.width=32", "model.depth=2", "model.vocab_size=64", "model.scan_impl=pallas"]
    config = load_config(Path(__file__).parents[2] / "configs/models/mamba-130m.yaml", small).model
    graphdef, state = nnx.split(build_model(config, 64, nnx.Rngs(0)))

    def loss(state, ids, prefix_mask):
        return jnp.mean(nnx.merge(graphdef, state)(ids, prefix_mask).astype(jnp.float32) ** 2)

    ids = jax.ShapeDtypeStruct((2, 300), jnp.int32)
    prefix = jax.ShapeDtypeStruct((2, 300), jnp.bool_)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with target_gpu():
        lowered = jax.jit(jax.value_and_grad(loss)).trace(state, ids, prefix)
        text = lowered.lower(lowering_platforms=("cuda",)).as_text()
    names = re.findall(r'name = "(linear_scan_\w+)"', text)
    assert {"linear_scan_forward", "linear_scan_backward"} <= set(names)
    assert len(re.findall(rf"custom_call @{re.escape(TRITON_CALL)}\(", text)) == len(names)
