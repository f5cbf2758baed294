"""Tests of the resampling kernels: backend agreement, the laws of each scheme, and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import numba_cpu, reference

METHODS = kernels.METHODS
ENGINES = ("numpy", "numba")


def random_log_weights(rng: np.random.Generator, size: int, dead: float = 0.2) -> np.ndarray:
    """Log-normal-ish weights with a fraction of -inf entries (at least one finite)."""
    lw = rng.normal(scale=rng.uniform(0.1, 5.0), size=size)
    lw[rng.random(size) < dead] = -np.inf
    lw[rng.integers(size)] = rng.normal()
    return lw


def normalised(lw: np.ndarray) -> np.ndarray:
    e = np.exp(lw - lw.max())
    return e / e.sum()


def counts_of(idx: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(idx, minlength=size)


# --- backends agree ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_numpy_and_numba_give_identical_indices(method: str) -> None:
    rng = np.random.default_rng(1234)
    for trial in range(150):
        size = int(rng.integers(1, 300))
        lw = random_log_weights(rng, size)
        n = size if trial % 3 else int(rng.integers(0, 2 * size + 2))
        seed = int(rng.integers(2**32))
        a = kernels.resample(lw, method, seed=seed, backend="numpy", n=n)
        b = kernels.resample(lw, method, seed=seed, backend="numba", n=n)
        assert a.dtype == b.dtype == np.int64
        np.testing.assert_array_equal(a, b, err_msg=f"{method} size={size} n={n} seed={seed}")


@pytest.mark.parametrize("method", METHODS)
def test_identical_on_equal_and_single_weights(method: str) -> None:
    for lw in (np.zeros(64), np.array([0.0]), np.array([-np.inf, 3.0, -np.inf])):
        for seed in range(20):
            a = kernels.resample(lw, method, seed=seed, backend="numpy")
            b = kernels.resample(lw, method, seed=seed, backend="numba")
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ENGINES)
def test_ess_and_logsumexp_match_scipy(engine: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        lw = random_log_weights(rng, int(rng.integers(1, 500))) + rng.normal(scale=50.0)
        w = np.exp(lw - lw.max())
        expected_ess = w.sum() ** 2 / (w**2).sum()
        assert math.isclose(kernels.ess(lw, backend=engine), expected_ess, rel_tol=1e-9)
        expected_lse = float(scipy.special.logsumexp(lw))
        got = kernels.logsumexp(lw, backend=engine)
        assert math.isclose(got, expected_lse, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_ess_and_logsumexp_edge_values(engine: str) -> None:
    assert kernels.ess(np.zeros(10), backend=engine) == pytest.approx(10.0, rel=1e-12)
    assert kernels.ess([0.0, -np.inf, -np.inf], backend=engine) == 1.0
    assert kernels.ess([-np.inf, -np.inf], backend=engine) == 0.0
    assert kernels.ess([], backend=engine) == 0.0
    assert kernels.logsumexp([-np.inf, -np.inf], backend=engine) == -np.inf
    assert kernels.logsumexp([], backend=engine) == -np.inf
    assert kernels.logsumexp([1000.0, 1000.0], backend=engine) == pytest.approx(
        1000.0 + math.log(2.0), rel=1e-15
    )
    assert kernels.logsumexp([-1000.0, -np.inf], backend=engine) == -1000.0


# --- the laws -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_systematic_counts_are_floor_or_ceil(engine: str) -> None:
    rng = np.random.default_rng(11)
    for trial in range(300):
        size = int(rng.integers(1, 200))
        lw = random_log_weights(rng, size)
        n = size if trial % 2 else int(rng.integers(1, 3 * size + 1))
        nw = n * normalised(lw)
        c = counts_of(kernels.resample(lw, "systematic", seed=trial, backend=engine, n=n), size)
        assert c.sum() == n
        assert np.all((c == np.floor(nw)) | (c == np.ceil(nw))), (trial, c, nw)


@pytest.mark.parametrize("engine", ENGINES)
def test_stratified_counts_within_two_of_expectation(engine: str) -> None:
    rng = np.random.default_rng(12)
    for trial in range(300):
        size = int(rng.integers(1, 200))
        lw = random_log_weights(rng, size)
        n = size if trial % 2 else int(rng.integers(1, 3 * size + 1))
        nw = n * normalised(lw)
        c = counts_of(kernels.resample(lw, "stratified", seed=trial, backend=engine, n=n), size)
        assert c.sum() == n
        assert np.all(np.abs(c - nw) < 2), (trial, c, nw)


@pytest.mark.parametrize("engine", ENGINES)
def test_residual_keeps_the_deterministic_copies(engine: str) -> None:
    rng = np.random.default_rng(13)
    for trial in range(300):
        size = int(rng.integers(1, 200))
        lw = random_log_weights(rng, size)
        n = size if trial % 2 else int(rng.integers(1, 3 * size + 1))
        floors = np.floor(n * normalised(lw)).astype(np.int64)
        draws = n - floors.sum()
        c = counts_of(kernels.resample(lw, "residual", seed=trial, backend=engine, n=n), size)
        assert c.sum() == n
        assert np.all(c >= floors), (trial, c, floors)
        assert np.all(c - floors <= draws)
        # a particle whose residual is zero gets exactly its deterministic copies
        assert np.all(c[n * normalised(lw) == floors] == floors[n * normalised(lw) == floors])


def test_residual_with_exact_multiples_is_deterministic() -> None:
    lw = [0.0, 0.0, 0.0, 0.0, -np.inf]  # weights 1/4 each and a dead one: exact in any libm
    for seed in range(10):
        for engine in ENGINES:
            idx = kernels.resample(lw, "residual", seed=seed, backend=engine, n=8)
            np.testing.assert_array_equal(idx, [0, 0, 1, 1, 2, 2, 3, 3])


UNBIASED_W = np.array([0.31, 0.0, 0.05, 0.17, 0.003, 0.2, 0.0, 0.127, 0.09, 0.05])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [10, 7])
def test_mean_counts_are_unbiased(method: str, n: int) -> None:
    """E[count_i] = n w_i: every mean is within 5 standard errors over R = 4000 repeats."""
    w = UNBIASED_W / UNBIASED_W.sum()
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    rng = np.random.default_rng(2024)
    repeats = 4000
    c = np.stack(
        [counts_of(kernels.resample(lw, method, seed=rng, n=n), w.size) for _ in range(repeats)]
    )
    mean = c.mean(axis=0)
    se = c.std(axis=0, ddof=1) / math.sqrt(repeats)
    assert np.all(np.abs(mean - n * w) <= 5 * se + 1e-12), (mean, n * w, se)
    # the bound is tight enough to see a 5% bias on the largest weight
    assert 5 * se[0] < 0.05 * n * w[0]


def binomial_chi_square_p(counts: np.ndarray, trials: int, p: float) -> float:
    """p-value of a chi-square goodness-of-fit test of ``counts`` against Binomial(trials, p),
    pooling the tails into cells of expected count >= 5."""
    observed = np.bincount(counts, minlength=trials + 1).astype(float)
    expected = scipy.stats.binom.pmf(np.arange(trials + 1), trials, p) * counts.size
    cells_o, cells_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            cells_o.append(acc_o)
            cells_e.append(acc_e)
            acc_o = acc_e = 0.0
    cells_o[-1] += acc_o
    cells_e[-1] += acc_e
    return float(
        scipy.stats.chisquare(cells_o, np.array(cells_e) * sum(cells_o) / sum(cells_e)).pvalue
    )


def repeated_counts(method: str, lw: np.ndarray, index: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array(
        [
            np.count_nonzero(kernels.resample(lw, method, seed=rng, n=n) == index)
            for _ in range(4000)
        ]
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("index", "n"), [(0, 20), (3, 20), (5, 33)])
def test_multinomial_counts_are_binomial(engine: str, index: int, n: int) -> None:
    w = UNBIASED_W / UNBIASED_W.sum()
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    rng = np.random.default_rng(99 + index)
    counts = np.array(
        [
            np.count_nonzero(
                kernels.resample(lw, "multinomial", seed=rng, backend=engine, n=n) == index
            )
            for _ in range(4000)
        ]
    )
    assert binomial_chi_square_p(counts, n, w[index]) > 1e-3


def test_binomial_check_rejects_systematic_counts() -> None:
    """The chi-square check has power: systematic counts (floor or ceil only) fail it."""
    w = UNBIASED_W / UNBIASED_W.sum()
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    counts = repeated_counts("systematic", lw, index=0, n=20, seed=5)
    assert binomial_chi_square_p(counts, 20, w[0]) < 1e-6


# --- dead particles -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.booleans(), st.floats(-30.0, 30.0, allow_nan=False)), min_size=1, max_size=80
    ),
    method=st.sampled_from(METHODS),
    engine=st.sampled_from(ENGINES),
    seed=st.integers(0, 2**32 - 1),
    extra=st.integers(-1, 100),
)
def test_dead_particles_are_never_chosen(
    data: list[tuple[bool, float]], method: str, engine: str, seed: int, extra: int
) -> None:
    lw = np.array([-np.inf if dead else v for dead, v in data])
    if np.all(lw == -np.inf):
        lw[len(lw) // 2] = data[len(lw) // 2][1]
    n = len(lw) if extra < 0 else extra
    idx = kernels.resample(lw, method, seed=seed, backend=engine, n=n)
    assert idx.shape == (n,)
    assert np.all(np.diff(idx) >= 0), "ancestors must come back sorted"
    assert np.all(np.isfinite(lw[idx])), "a dead particle was chosen"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("engine", ENGINES)
def test_dead_tail_is_not_chosen_when_points_reach_one(method: str, engine: str) -> None:
    """An underflowing weight (exp(-800) = 0) and a dead tail are never picked, even at u = 1."""
    lw = np.array([0.0, -1e-300, -800.0] + [-np.inf] * 5)
    for seed in range(200):
        idx = kernels.resample(lw, method, seed=seed, backend=engine, n=50)
        assert idx.max() <= 1


def test_invert_clamps_points_at_one() -> None:
    c, last = reference.cumulative(np.array([0.5, 0.5, 0.0, 0.0]))
    assert c[-1] == 1.0 and last == 1
    np.testing.assert_array_equal(reference.invert(c, last, np.array([0.0, 0.5, 1.0])), [0, 1, 1])
    lw = np.array([np.log(0.5), np.log(0.5), -np.inf, -np.inf])
    u = np.array([np.nextafter(1.0, 0.0)])  # (3 + U) / 4 rounds to exactly 1.0
    assert (3 + u[0]) / 4 == 1.0
    out = numba_cpu.systematic(lw, u, 4)
    np.testing.assert_array_equal(out, reference.systematic(lw, u, 4))
    # points 0.25, 0.5, 0.75, 1.0 after rounding: the last one is clamped to the last live particle
    np.testing.assert_array_equal(out, [0, 1, 1, 1])


# --- seeds, inputs, sizes -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_seed_reproducible_and_generator_accepted(method: str) -> None:
    lw = random_log_weights(np.random.default_rng(3), 100)
    a = kernels.resample(lw, method, seed=42)
    np.testing.assert_array_equal(a, kernels.resample(lw, method, seed=42))
    gen = np.random.default_rng(42)
    before = gen.bit_generator.state
    np.testing.assert_array_equal(a, kernels.resample(lw, method, seed=gen))
    assert gen.bit_generator.state != before, "the generator must be advanced"
    second = kernels.resample(lw, method, seed=gen)
    assert not np.array_equal(a, second)
    assert kernels.resample(lw, method, seed=None).shape == (100,)


def test_default_seed_is_zero() -> None:
    lw = random_log_weights(np.random.default_rng(4), 50)
    np.testing.assert_array_equal(kernels.resample(lw), kernels.resample(lw, "systematic", seed=0))


@pytest.mark.parametrize("method", METHODS)
def test_torch_cpu_tensor_and_list_inputs(method: str) -> None:
    lw = random_log_weights(np.random.default_rng(5), 64)
    expected = kernels.resample(lw, method, seed=3)
    tensor = torch.tensor(lw, dtype=torch.float64, requires_grad=True)
    np.testing.assert_array_equal(kernels.resample(tensor, method, seed=3), expected)
    np.testing.assert_array_equal(kernels.resample(list(lw), method, seed=3), expected)
    assert kernels.ess(tensor) == pytest.approx(kernels.ess(lw), rel=1e-12)
    assert kernels.logsumexp(torch.tensor(lw, dtype=torch.float32)) == pytest.approx(
        kernels.logsumexp(lw.astype(np.float32).astype(np.float64)), rel=1e-12
    )


class _FakeCudaTensor:
    """Stands in for a CUDA tensor: only ``.device.type`` is read before dispatch."""

    class device:  # noqa: N801 - mimics torch's attribute
        type = "cuda"


def test_cuda_tensor_dispatches_to_triton() -> None:
    from kernels._validate import choose_backend, device_of

    assert choose_backend(None, device_of(_FakeCudaTensor())) == "triton"
    assert choose_backend(None, "cpu") == "numba"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [0, 1, 3, 17, 1000])
def test_n_different_from_length(method: str, n: int) -> None:
    lw = random_log_weights(np.random.default_rng(6), 40)
    for engine in ENGINES:
        idx = kernels.resample(lw, method, seed=1, backend=engine, n=n)
        assert idx.shape == (n,) and idx.dtype == np.int64
        assert np.all(np.diff(idx) >= 0)
        assert np.all((idx >= 0) & (idx < 40))


def test_import_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, kernels; kernels.resample([0.0, 1.0]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_values_raise(engine: str) -> None:
    for method in METHODS:
        for bad in ([-np.inf, -np.inf], [], np.array([], dtype=float)):
            with pytest.raises(ValueError, match="every particle has weight zero"):
                kernels.resample(bad, method, backend=engine)
    for call in (kernels.resample, kernels.ess, kernels.logsumexp):
        for bad in ([0.0, np.nan], [np.nan, np.inf], [np.nan], [-np.inf, np.nan, 1.0]):
            with pytest.raises(ValueError, match="NaN"):
                call(bad, backend=engine)
        for bad in ([0.0, np.inf], [np.inf], [-np.inf, np.inf]):
            with pytest.raises(ValueError, match=r"\+inf"):
                call(bad, backend=engine)
        with pytest.raises(ValueError, match="1-D"):
            call(np.zeros((2, 3)), backend=engine)


def test_unknown_method_and_backend_raise() -> None:
    with pytest.raises(ValueError, match="'multinomial', 'stratified', 'systematic', 'residual'"):
        kernels.resample([0.0], method="bootstrap")
    for call in (kernels.resample, kernels.ess, kernels.logsumexp):
        with pytest.raises(ValueError, match="'numpy', 'numba'"):
            call([0.0], backend="cupy")
    with pytest.raises(ValueError, match="n must be"):
        kernels.resample([0.0], n=-1)
    with pytest.raises(TypeError):
        kernels.resample([0.0], n=2.5)
