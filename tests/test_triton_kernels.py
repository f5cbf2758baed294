"""Triton kernels against the NumPy reference and the resampling laws, without a GPU.

TRITON_INTERPRET=1 is set here (unless already set) before triton is first imported, so the
kernels run in Triton's interpreter on CPU tensors (triton's mode is fixed for the process when it
is imported; this only turns the interpreter on, which no other test module relies on).  Run with
TRITON_INTERPRET=0 on a machine with a GPU and the same tests use CUDA tensors.  If triton was
already imported without the interpreter and there is no GPU, the file reruns itself in a
subprocess.  The interpreter is slow (~10-30 ms a launch), so sizes are small and block sizes are
lowered to cover several blocks.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

if "triton" not in sys.modules:  # triton fixes its mode on import: never change it afterwards
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.special  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip("triton")

import kernels  # noqa: E402
from kernels import _validate, reference, triton_bitmask, triton_gpu  # noqa: E402

METHODS = kernels.METHODS
if triton_gpu.MODE is None:  # triton and the kernels were decorated in different modes
    DEVICE: str | None = None
elif triton_gpu.INTERPRETED:
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    DEVICE = None

UNBIASED_W = np.array([0.31, 0.0, 0.05, 0.17, 0.003, 0.2, 0.0, 0.127, 0.09, 0.05])


@pytest.fixture(autouse=True)
def _device(request: pytest.FixtureRequest) -> None:
    if DEVICE is None and "subprocess" not in request.node.name:
        pytest.skip("triton imported without TRITON_INTERPRET=1 and no GPU: run in a subprocess")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 weights/draws and 64 columns, so small inputs span several blocks."""
    monkeypatch.setattr(triton_gpu, "SCAN_BLOCK", 16)
    monkeypatch.setattr(triton_gpu, "DRAW_BLOCK", 16)
    monkeypatch.setattr(triton_bitmask, "MASK_BLOCK", 64)


def on_device(values: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=DEVICE)


def triton_resample(lw: np.ndarray, method: str, seed, n: int | None = None) -> np.ndarray:
    out = kernels.resample(on_device(lw), method, seed=seed, backend="triton", n=n)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    assert out.device.type == torch.device(DEVICE).type
    return out.cpu().numpy()


def random_log_weights(rng: np.random.Generator, size: int, dead: float = 0.2) -> np.ndarray:
    lw = rng.normal(scale=rng.uniform(0.1, 5.0), size=size)
    lw[rng.random(size) < dead] = -np.inf
    lw[rng.integers(size)] = rng.normal()
    return lw


def normalised(lw: np.ndarray) -> np.ndarray:
    e = np.exp(lw - lw.max())
    return e / e.sum()


def check_laws(lw: np.ndarray, method: str, idx: np.ndarray, n: int) -> None:
    """The laws every single draw obeys: sorted, live, and each scheme's count bounds."""
    c = np.bincount(idx, minlength=lw.size)
    nw = n * normalised(lw)
    assert idx.shape == (n,) and c.sum() == n
    assert np.all(np.diff(idx) >= 0), "ancestors must come back sorted"
    assert np.all(np.isfinite(lw[idx])), "a dead particle was chosen"
    if method == "systematic":
        assert np.all((c == np.floor(nw)) | (c == np.ceil(nw))), (c, nw)
    elif method == "stratified":
        assert np.all(np.abs(c - nw) < 2), (c, nw)
    elif method == "residual":
        floors = np.floor(nw)
        assert np.all(c >= floors) and np.all(c - floors <= n - floors.sum()), (c, nw)


# --- agreement with the reference -----------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_identical_to_reference_on_random_weights(method: str, small_blocks: None) -> None:
    """Same seed, same ancestors as numpy, over sizes around the block size of 16 and n != N."""
    rng = np.random.default_rng(31)
    sizes = [1, 2, 15, 16, 17, 33, 70]
    for trial, size in enumerate(sizes + sizes):
        lw = random_log_weights(rng, size)
        n = size if trial < len(sizes) else int(rng.integers(0, 2 * size + 20))
        seed = int(rng.integers(2**32))
        got = triton_resample(lw, method, seed, n)
        expected = kernels.resample(lw, method, seed=seed, backend="numpy", n=n)
        np.testing.assert_array_equal(got, expected, err_msg=f"size={size} n={n} seed={seed}")
        check_laws(lw, method, got, n)


EDGE_CASES = {
    "one particle": np.array([0.0]),
    "one particle, offset": np.array([-7.25]),
    "equal weights": np.zeros(37),
    "one live among dead": np.array([-np.inf] * 20 + [2.0] + [-np.inf] * 12),
    "first live only": np.array([3.0] + [-np.inf] * 18),
    "last live only": np.array([-np.inf] * 18 + [3.0]),
    "huge offset": np.random.default_rng(1).normal(size=40) + 1e4,
    "huge negative offset": np.random.default_rng(2).normal(size=40) - 1e4,
    "huge spread": np.array([1e4, 0.0, -1e4, 1e4 - 1.0, -np.inf, 1e4 - 30.0, -5e3]),
    "underflow and dead tail": np.array([0.0, -1e-300, -800.0] + [-np.inf] * 5),
    "exact quarters": np.array([0.0, 0.0, 0.0, 0.0, -np.inf]),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_identical_to_reference_on_edge_cases(method: str, case: str, small_blocks: None) -> None:
    lw = EDGE_CASES[case]
    for seed, n in [(0, None), (1, 1), (2, 3), (3, 2 * lw.size + 5)]:
        got = triton_resample(lw, method, seed, n)
        expected = kernels.resample(lw, method, seed=seed, backend="numpy", n=n)
        np.testing.assert_array_equal(got, expected, err_msg=f"seed={seed} n={n}")
        check_laws(lw, method, got, lw.size if n is None else n)


def test_residual_with_exact_multiples_is_deterministic() -> None:
    lw = np.array([0.0, 0.0, 0.0, 0.0, -np.inf])
    for seed in range(4):
        np.testing.assert_array_equal(
            triton_resample(lw, "residual", seed, 8), [0, 0, 1, 1, 2, 2, 3, 3]
        )


@pytest.mark.parametrize("method", METHODS)
def test_zero_draws_and_generator_streams(method: str) -> None:
    """n = 0 gives an empty tensor without drawing; a Generator advances as on the host, and a
    failing call leaves it untouched."""
    lw = random_log_weights(np.random.default_rng(8), 24)
    gen = np.random.default_rng(5)
    before = gen.bit_generator.state
    assert triton_resample(lw, method, gen, 0).shape == (0,)
    assert gen.bit_generator.state == before
    with pytest.raises(ValueError, match="NaN"):
        kernels.resample(on_device(np.array([0.0, np.nan])), method, seed=gen, backend="triton")
    assert gen.bit_generator.state == before
    host = np.random.default_rng(5)
    for _ in range(3):
        np.testing.assert_array_equal(
            triton_resample(lw, method, gen), kernels.resample(lw, method, seed=host)
        )
    assert gen.bit_generator.state == host.bit_generator.state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs_match_their_float64_values(dtype: torch.dtype) -> None:
    lw = random_log_weights(np.random.default_rng(9), 50)
    t = on_device(lw, dtype)
    exact = t.double().cpu().numpy()
    for method in METHODS:
        got = kernels.resample(t, method, seed=4, backend="triton").cpu().numpy()
        np.testing.assert_array_equal(got, kernels.resample(exact, method, seed=4))
    assert kernels.ess(t, backend="triton") == pytest.approx(kernels.ess(exact), rel=1e-12)
    assert kernels.logsumexp(t, backend="triton") == pytest.approx(
        kernels.logsumexp(exact), rel=1e-12
    )


def test_non_contiguous_and_grad_tensors() -> None:
    lw = random_log_weights(np.random.default_rng(10), 60)
    strided = on_device(np.repeat(lw, 2))[::2]
    assert not strided.is_contiguous()
    grad = on_device(lw).requires_grad_(True)
    for t in (strided, grad):
        np.testing.assert_array_equal(
            kernels.resample(t, "stratified", seed=6, backend="triton").cpu().numpy(),
            kernels.resample(lw, "stratified", seed=6),
        )


# --- ESS and logsumexp ---------------------------------------------------------------------------


def test_ess_and_logsumexp_match_reference(small_blocks: None) -> None:
    rng = np.random.default_rng(7)
    for size in [1, 2, 15, 16, 17, 50, 131]:
        lw = random_log_weights(rng, size) + rng.normal(scale=50.0)
        w = np.exp(lw - lw.max())
        assert math.isclose(
            kernels.ess(on_device(lw), backend="triton"), w.sum() ** 2 / (w**2).sum(),
            rel_tol=1e-12,
        )
        got = kernels.logsumexp(on_device(lw), backend="triton")
        assert math.isclose(got, float(scipy.special.logsumexp(lw)), rel_tol=1e-12)
        assert math.isclose(got, reference.logsumexp(lw), rel_tol=1e-14, abs_tol=1e-14)


def test_ess_and_logsumexp_edge_values() -> None:
    def ess(values) -> float:
        return kernels.ess(on_device(np.array(values, dtype=float)), backend="triton")

    def lse(values) -> float:
        return kernels.logsumexp(on_device(np.array(values, dtype=float)), backend="triton")

    assert ess(np.zeros(10)) == pytest.approx(10.0, rel=1e-12)
    assert ess([0.0, -np.inf, -np.inf]) == 1.0
    assert ess([-np.inf, -np.inf]) == 0.0
    assert ess([]) == 0.0
    assert ess([1e4, 1e4, -1e4]) == pytest.approx(2.0, rel=1e-12)
    assert lse([-np.inf, -np.inf]) == -np.inf
    assert lse([]) == -np.inf
    assert lse([1000.0, 1000.0]) == pytest.approx(1000.0 + math.log(2.0), rel=1e-15)
    assert lse([-1000.0, -np.inf]) == -1000.0
    assert lse([1e4, 1e4 - math.log(3.0)]) == pytest.approx(1e4 + math.log(4.0 / 3.0), rel=1e-15)
    assert lse([-1e4]) == -1e4


# --- the laws, statistically --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_mean_counts_are_unbiased(method: str) -> None:
    """E[count_i] = n w_i: every mean within 5 standard errors over R = 150 seeds (n = 10)."""
    w = UNBIASED_W / UNBIASED_W.sum()
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    rng = np.random.default_rng(2024)
    repeats, n = 150, 10
    c = np.stack(
        [np.bincount(triton_resample(lw, method, rng, n), minlength=w.size) for _ in range(repeats)]
    )
    assert np.all(c[:, w == 0] == 0), "a dead particle was chosen"
    mean = c.mean(axis=0)
    se = c.std(axis=0, ddof=1) / math.sqrt(repeats)
    assert np.all(np.abs(mean - n * w) <= 5 * se + 1e-12), (mean, n * w, se)
    assert 5 * se[0] < 0.25 * n * w[0]  # enough power to see a 25% bias on the largest weight


def two_sided_chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson goodness of fit of ``counts`` to Multinomial(Σ counts, probs), two-sided: counts
    that fit too well (systematic's ⌊n w⌋ or ⌈n w⌉) are rejected as surely as a poor fit."""
    live = probs > 0
    expected = counts.sum() * probs[live]
    stat = float((((counts[live] - expected) ** 2) / expected).sum())
    df = int(live.sum()) - 1
    return 2 * min(scipy.stats.chi2.sf(stat, df), scipy.stats.chi2.cdf(stat, df))


def test_multinomial_counts_fit_the_multinomial_law() -> None:
    """n = 4000 draws in one call are iid from w (chi-square p > 1e-3 in each of 3 calls), and the
    same test rejects systematic counts, which are ⌊n w_i⌋ or ⌈n w_i⌉."""
    w = UNBIASED_W / UNBIASED_W.sum()
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    n = 4000
    for seed in range(3):
        c = np.bincount(triton_resample(lw, "multinomial", seed, n), minlength=w.size)
        assert c[w == 0].sum() == 0
        assert two_sided_chi_square_p(c, w) > 1e-3, c
    c = np.bincount(triton_resample(lw, "systematic", 0, n), minlength=w.size)
    assert two_sided_chi_square_p(c, w) < 1e-6


def test_residual_extra_draws_follow_the_residuals() -> None:
    """Beyond ⌊n w_i⌋, the D = n - Σ⌊n w_i⌋ extra draws are Multinomial(D, r / D), r the residuals:
    pooled over 6 calls with 300 particles, binned into 8 groups of equal residual mass."""
    rng = np.random.default_rng(77)
    lw = rng.normal(scale=1.5, size=300)
    lw[rng.random(300) < 0.1] = -np.inf
    n = lw.size
    nw = n * normalised(lw)
    floors = np.floor(nw)
    rest = nw - floors
    groups = np.minimum((np.cumsum(rest) - rest / 2) / rest.sum() * 8, 7).astype(int)
    probs = np.bincount(groups, weights=rest, minlength=8) / rest.sum()
    pooled = np.zeros(8)
    for seed in range(6):
        c = np.bincount(triton_resample(lw, "residual", seed, n), minlength=n)
        assert np.all(c >= floors) and np.all(c[rest == 0] == floors[rest == 0])
        pooled += np.bincount(groups, weights=c - floors, minlength=8)
    assert pooled.sum() == 6 * (n - floors.sum())
    assert two_sided_chi_square_p(pooled, probs) > 1e-3, (pooled, probs * pooled.sum())


@pytest.mark.parametrize("method", METHODS)
def test_dead_particles_are_never_chosen(method: str, small_blocks: None) -> None:
    rng = np.random.default_rng(55)
    for trial in range(6):
        size = int(rng.integers(1, 50))
        lw = random_log_weights(rng, size, dead=0.6)
        idx = triton_resample(lw, method, trial, int(rng.integers(1, 60)))
        assert np.all(np.isfinite(lw[idx]))
    lw = np.array([0.0, -1e-300, -800.0] + [-np.inf] * 5)  # exp(-800) underflows: dead too
    for seed in range(6):
        assert triton_resample(lw, method, seed, 50).max() <= 1


def test_a_point_on_a_rounding_step_of_a_dead_particle_goes_to_a_live_one() -> None:
    """Where a parallel scan moves S past a zero weight by ulps, ``prev`` sends the point
    landing there back to the live particle before it (the interpreter's scan is sequential, so
    the rounding is staged here by hand)."""
    bump = 4 * math.ulp(0.5)
    cum = on_device(np.array([0.5, 0.5 + bump, 1.0]))  # particle 1 is dead: e_1 = 0
    rank = torch.tensor([1, 1, 2], dtype=torch.int32, device=DEVICE)
    live = torch.tensor([0, 2, 0], dtype=torch.int32, device=DEVICE)
    out = torch.empty(1, dtype=torch.int64, device=DEVICE)
    u0 = 0.5 + bump / 2  # in (S_0, S_1]: bisection lands on the dead particle 1
    assert u0 > 0.5 and u0 < 0.5 + bump
    triton_gpu._invert_kernel[(1,)](
        cum, rank, live, 3, 2, cum, u0, 1, out, SCHEME=2, BLOCK=16
    )
    assert out.item() == 0


# --- token bitmask ------------------------------------------------------------------------------


def masked_reference(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    return np.where(allowed, logits, -np.inf)


@pytest.mark.parametrize("vocab", [1, 31, 32, 33, 100, 257])
def test_pack_and_unpack_round_trip(vocab: int) -> None:
    allowed = np.random.default_rng(vocab).random((3, vocab)) < 0.5
    words = kernels.pack_bitmask(allowed)
    assert words.dtype == np.int32 and words.shape == (3, -(-vocab // 32))
    np.testing.assert_array_equal(kernels.unpack_bitmask(words, vocab), allowed)
    t = kernels.pack_bitmask(torch.from_numpy(allowed))
    assert t.dtype == torch.int32
    np.testing.assert_array_equal(t.numpy(), words)
    if vocab >= 32:  # bit j of word k is token 32k + j, word 0 bit 31 the sign bit
        one = np.zeros(vocab, dtype=bool)
        one[31] = True
        assert kernels.pack_bitmask(one)[0] == np.int32(-(2**31))
        one[:] = False
        one[3] = True
        assert kernels.pack_bitmask(one)[0] == 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("backend", ["triton", "numba", "numpy"])
def test_bitmask_matches_reference(dtype: torch.dtype, backend: str, small_blocks: None) -> None:
    rng = np.random.default_rng(3)
    for rows, vocab in [(1, 1), (2, 31), (3, 32), (2, 33), (4, 130), (2, 200)]:
        allowed = rng.random((rows, vocab)) < 0.4
        allowed[0] = True  # a row with every token allowed (every word -1)
        if rows > 1:
            allowed[1] = False
        base = torch.randn(rows, vocab, dtype=torch.float64).to(dtype)
        expected = torch.where(torch.from_numpy(allowed), base, -torch.inf)
        logits = base.clone().to(DEVICE if backend == "triton" else "cpu")
        out = kernels.apply_token_bitmask(logits, kernels.pack_bitmask(allowed), backend=backend)
        assert out is logits
        assert torch.equal(logits.cpu(), expected), (rows, vocab)


@pytest.mark.parametrize("backend", ["triton", "numba", "numpy"])
def test_bitmask_layouts(backend: str, small_blocks: None) -> None:
    """Strided rows (a slice of a bigger tensor), 1-D logits, wider int32 or uint32 words, NumPy
    logits: only the forbidden entries change."""
    rng = np.random.default_rng(4)
    device = DEVICE if backend == "triton" else "cpu"
    big = torch.randn(3, 5, 100, dtype=torch.float32, device=device)
    view = big[:, 2, :90]
    assert not view.is_contiguous()
    allowed = rng.random((3, 90)) < 0.3
    before = big.clone()
    kernels.apply_token_bitmask(view, kernels.pack_bitmask(allowed), backend=backend)
    expected = before.clone()
    expected[:, 2, :90] = torch.where(torch.from_numpy(allowed).to(device), before[:, 2, :90],
                                      -torch.inf)
    assert torch.equal(big, expected)

    row = torch.randn(70, dtype=torch.float32, device=device)
    keep = rng.random(70) < 0.5
    wide = np.concatenate([kernels.pack_bitmask(keep), [-1, -1]]).astype(np.int32)
    expected_row = torch.where(torch.from_numpy(keep).to(device), row, -torch.inf)
    kernels.apply_token_bitmask(row, wide.view(np.uint32), backend=backend)
    assert torch.equal(row, expected_row)

    if backend != "triton" or DEVICE == "cpu":
        arr = rng.normal(size=(2, 45)).astype(np.float32)
        keep2 = rng.random((2, 45)) < 0.5
        expected_arr = masked_reference(arr, keep2)
        assert kernels.apply_token_bitmask(arr, kernels.pack_bitmask(keep2), backend=backend) is arr
        np.testing.assert_array_equal(arr, expected_arr)


def test_bitmask_shape_and_dtype_errors() -> None:
    logits = torch.zeros(2, 40)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        kernels.apply_token_bitmask(logits, np.zeros((2, 1), dtype=np.int32))
    with pytest.raises(ValueError, match="does not fit"):
        kernels.apply_token_bitmask(logits, np.zeros((3, 2), dtype=np.int32))
    with pytest.raises(TypeError, match="int32"):
        kernels.apply_token_bitmask(logits, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="floating"):
        kernels.apply_token_bitmask(torch.zeros(2, 40, dtype=torch.int32),
                                    np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(ValueError, match="rows, vocab"):
        kernels.apply_token_bitmask(torch.zeros(2, 2, 40), np.zeros((2, 2, 2), dtype=np.int32))


# --- dispatch and errors --------------------------------------------------------------------------


def test_default_backend_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """None picks triton for CUDA tensors and numba (NumPy out) for host data and CPU tensors."""
    assert _validate.choose_backend(None, "cuda") == "triton"
    assert _validate.choose_backend(None, "cpu") == "numba"
    lw = random_log_weights(np.random.default_rng(12), 30)
    assert isinstance(kernels.resample(on_device(lw).cpu()), np.ndarray)

    calls = []

    class Recorder:
        def __getattr__(self, name: str):
            return lambda *args, **kwargs: calls.append(name) or 0.0

    class FakeCuda:
        class device:  # noqa: N801 - mimics torch's attribute
            type = "cuda"

    for name in ("_module", "_bitmask_module"):
        real = getattr(kernels, name)
        monkeypatch.setattr(
            kernels, name, lambda b, real=real: Recorder() if b == "triton" else real(b)
        )
    kernels.resample(FakeCuda())
    kernels.ess(FakeCuda())
    kernels.logsumexp(FakeCuda())
    fake = FakeCuda()
    fake.shape, fake.dtype = (1, 32), torch.float32
    kernels.apply_token_bitmask(fake, np.zeros((1, 1), dtype=np.int32))
    assert calls == ["resample", "ess", "logsumexp", "apply_token_bitmask_"]


def test_host_data_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    class CupyLike:
        device = "cuda:0"

    with pytest.raises(TypeError, match="takes torch tensors"):
        kernels.resample(CupyLike(), backend="triton")
    monkeypatch.setattr(triton_gpu, "INTERPRETED", False)
    for values in (torch.zeros(3), np.zeros(3), [0.0, 1.0]):
        for call in (kernels.ess, kernels.logsumexp, kernels.resample):
            with pytest.raises(kernels.TritonUnavailableError, match="TRITON_INTERPRET=1"):
                call(values, backend="triton")
    with pytest.raises(kernels.TritonUnavailableError, match="CUDA tensors"):
        kernels.apply_token_bitmask(torch.zeros(1, 4), np.zeros((1, 1), np.int32), "triton")
    assert issubclass(kernels.TritonUnavailableError, RuntimeError)


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered")  # the interpreter's max of NaNs
def test_bad_values_raise_like_the_host_backends() -> None:
    for method in METHODS:
        for bad in ([-np.inf, -np.inf], []):
            with pytest.raises(ValueError, match="every particle has weight zero"):
                kernels.resample(on_device(np.array(bad)), method, backend="triton")
    for call in (kernels.resample, kernels.ess, kernels.logsumexp):
        for bad in ([0.0, np.nan], [np.nan, np.inf], [np.nan], [-np.inf, np.nan, 1.0]):
            with pytest.raises(ValueError, match="NaN"):
                call(on_device(np.array(bad)), backend="triton")
        for bad in ([0.0, np.inf], [np.inf], [-np.inf, np.inf]):
            with pytest.raises(ValueError, match=r"\+inf"):
                call(on_device(np.array(bad)), backend="triton")
        with pytest.raises(ValueError, match="1-D"):
            call(on_device(np.zeros((2, 3))), backend="triton")
    with pytest.raises(ValueError, match="n must be"):
        kernels.resample(on_device(np.zeros(2)), backend="triton", n=-1)
    with pytest.raises(TypeError):
        kernels.resample(on_device(np.zeros(2)), backend="triton", n=2.5)


def test_in_subprocess_when_triton_was_imported_without_interpreter() -> None:
    """Runs this file with TRITON_INTERPRET=1 when this process cannot (skipped otherwise)."""
    if DEVICE is not None:
        pytest.skip("the tests above ran in this process")
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
