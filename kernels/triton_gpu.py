"""Triton kernels: the laws of ``reference`` computed where the log-weights live (a CUDA tensor).

Every kernel works in float64 whatever the input dtype (as the host backends do).  For N
log-weights l and n draws:

  scan     one program sweeps l in blocks: m = max l, e_i = exp(l_i - m), the running sums
           S_i = Σ_{j≤i} e_j (a parallel scan inside a block plus a carry between blocks), and
           the live particles (e_i > 0) ranked, rank_i = #{j ≤ i : e_j > 0}, and compacted,
           live[rank_j - 1] = j (an integer scan and a scatter, exact in any order);
  invert   one lane per draw: a_k = prev(min(min{i : S_i / S_{N-1} > u_k}, N - 1)) by bisection,
           where prev(i) = max{j ≤ i : e_j > 0} = live[rank_i - 1] (two loads).

``prev`` is the reference's clamp to the last live particle, and more: it sends a point that
lands on a dead particle (which only rounding in a parallel scan can do, where a zero term moves
a sum by an ulp) back to the live one before it, so a dead particle is never chosen.  Residual
resampling is three launches: a scan of the deterministic copies ⌊n w_i⌋ (integers, exact) and of
the residuals; per particle the cumulative count cc_i = copies through i + extra draws through i
(a bisection over the sorted extra points); per slot k, a_k = min{i : cc_i > k}.

Randomness is not drawn here: ``resample`` draws it on the host with ``reference.draw_uniforms``
from the caller's seed, so triton, numba and numpy see the same numbers, and hands it over as a
kernel argument (systematic, one float64) or one host-to-device copy (stratified: the n
uniforms; multinomial and residual: the n + 1 partial sums of the exponential spacings, summed on
the host exactly as ``reference.sorted_uniforms`` does).  Only the scan of e differs from the
reference's sequential sum, so ancestors agree except where a point lies within an ulp of a
cumulative boundary.

Checks cost one device-to-host sync per call: the scan's [m, #NaN] is read back before the
draws are made, so a bad input raises ValueError (and leaves a Generator untouched) as on the
host; the ancestors come back as an int64 tensor on the weights' device, without a further sync.

CPU tensors (and arrays) run only in Triton's interpreter, TRITON_INTERPRET=1 set before triton
is first imported; that is how the tests run without a GPU.  The scan is one program, fine for
particle counts (N up to ~1e5), not meant for millions.  The token-bitmask kernel is in
``triton_bitmask``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from kernels import reference
from kernels._validate import (
    ALL_DEAD,
    TritonUnavailableError,
    as_log_weights,
    check_draws,
    check_peak,
)

# Block sizes, read at each call (tests lower them to cover several blocks with small inputs).
SCAN_BLOCK = 1024  # weights per step of the one-program scans
DRAW_BLOCK = 256  # draws (or particles) per program of the bisection kernels

SCHEME_CODES = {"multinomial": 0, "stratified": 1, "systematic": 2}


# --- device helpers -------------------------------------------------------------------------------


@triton.jit
def _peak(x_ptr, size, BLOCK: tl.constexpr):
    """(m, #NaN) with m = max_i l_i; NaN is counted, not propagated (GPU max ignores it)."""
    offs = tl.arange(0, BLOCK)
    top = tl.full([BLOCK], float("-inf"), tl.float64)
    nans = tl.zeros([BLOCK], tl.int32)
    for start in range(0, size, BLOCK):
        idx = start + offs
        x = tl.load(x_ptr + idx, mask=idx < size, other=float("-inf")).to(tl.float64)
        top = tl.maximum(top, x)
        nans += (x != x).to(tl.int32)
    return tl.max(top, 0), tl.sum(nans, 0)


@triton.jit
def _finite(m):
    """The shift for exp(l - m): m itself, or 0 when m = ±inf (all dead, or a bad input)."""
    return tl.where((m > float("-inf")) & (m < float("inf")), m, 0.0)


@triton.jit
def _bisect_right(cum_ptr, total, u, size, steps):
    """min{i < size : cum_i / total > u} per lane (size if none), in ``steps`` halvings."""
    lo = tl.zeros(u.shape, tl.int32)
    hi = lo + size
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        c = tl.load(cum_ptr + mid, mask=active, other=0.0) / total
        lo = tl.where(active & (c <= u), mid + 1, lo)
        hi = tl.where(active & (c > u), mid, hi)
    return lo


# --- kernels --------------------------------------------------------------------------------------


@triton.jit
def _moments_kernel(x_ptr, size, out_ptr, BLOCK: tl.constexpr):
    """out = [m, #NaN, Σ e_i, Σ e_i²] with e_i = exp(l_i - m), m = max l."""
    m, nans = _peak(x_ptr, size, BLOCK)
    shift = _finite(m)
    offs = tl.arange(0, BLOCK)
    s = tl.zeros([BLOCK], tl.float64)
    s2 = tl.zeros([BLOCK], tl.float64)
    for start in range(0, size, BLOCK):
        idx = start + offs
        x = tl.load(x_ptr + idx, mask=idx < size, other=float("-inf")).to(tl.float64)
        e = tl.exp(x - shift)
        s += e
        s2 += e * e
    tl.store(out_ptr, m)
    tl.store(out_ptr + 1, nans.to(tl.float64))
    tl.store(out_ptr + 2, tl.sum(s, 0))
    tl.store(out_ptr + 3, tl.sum(s2, 0))


@triton.jit
def _rank_live(live, idx, inside, carry, rank_ptr, live_ptr):
    """Store rank_i = #{j ≤ i : live_j} and live_ptr[rank_i - 1] = i for live i (the live
    indices, compacted); returns the new carry of the count."""
    rank = carry + tl.cumsum(live.to(tl.int32), 0)
    tl.store(rank_ptr + idx, rank, mask=inside)
    tl.store(live_ptr + rank - 1, idx, mask=inside & live)
    return tl.max(rank, 0)


@triton.jit
def _cumulative_kernel(x_ptr, size, cum_ptr, rank_ptr, live_ptr, stats_ptr, BLOCK: tl.constexpr):
    """S_i = Σ_{j≤i} e_j, and the live particles (e_i > 0) ranked and compacted (``_rank_live``);
    stats = [m, #NaN]."""
    m, nans = _peak(x_ptr, size, BLOCK)
    shift = _finite(m)
    offs = tl.arange(0, BLOCK)
    carry = tl.full([], 0.0, tl.float64)
    count = tl.full([], 0, tl.int32)
    for start in range(0, size, BLOCK):
        idx = start + offs
        inside = idx < size
        x = tl.load(x_ptr + idx, mask=inside, other=float("-inf")).to(tl.float64)
        e = tl.exp(x - shift)
        s = carry + tl.cumsum(e, 0)
        tl.store(cum_ptr + idx, s, mask=inside)
        count = _rank_live(inside & (e > 0.0), idx, inside, count, rank_ptr, live_ptr)
        carry = tl.max(s, 0)  # the block's last sum (or above it by an ulp): S stays monotone
    tl.store(stats_ptr, m)
    tl.store(stats_ptr + 1, nans.to(tl.float64))


@triton.jit
def _last_live_at(rank_ptr, live_ptr, i):
    """max{j ≤ i : live_j} = live[rank_i - 1] (the first live particle if none)."""
    return tl.load(live_ptr + tl.maximum(tl.load(rank_ptr + i) - 1, 0))


@triton.jit
def _invert_kernel(
    cum_ptr, rank_ptr, live_ptr, size, steps, u_ptr, u0: tl.float64, n, out_ptr,
    SCHEME: tl.constexpr, BLOCK: tl.constexpr,
):
    """a_k = prev(min(min{i : S_i / S_{N-1} > u_k}, N - 1)), prev(i) = max{j ≤ i : e_j > 0}, at
    the scheme's point u_k:
    multinomial P_k / P_n (P partial sums of exponentials), stratified (k + U_k) / n,
    systematic (k + U) / n."""
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    if SCHEME == 0:
        u = tl.load(u_ptr + k, mask=inside, other=0.0) / tl.load(u_ptr + n)
    elif SCHEME == 1:
        u = (k.to(tl.float64) + tl.load(u_ptr + k, mask=inside, other=0.0)) / n
    else:
        u = (k.to(tl.float64) + u0) / n
    total = tl.load(cum_ptr + size - 1)
    i = _bisect_right(cum_ptr, total, u, size, steps)
    a = _last_live_at(rank_ptr, live_ptr, tl.minimum(i, size - 1))
    tl.store(out_ptr + k, a.to(tl.int64), mask=inside)


@triton.jit
def _residual_scan_kernel(
    x_ptr, size, n, copies_ptr, rest_ptr, rank_ptr, live_ptr, stats_ptr, BLOCK: tl.constexpr
):
    """With nw_i = n (e_i / Σ e): C_i = Σ_{j≤i} ⌊nw_j⌋ (int64), R_i = Σ_{j≤i} (nw_j - ⌊nw_j⌋),
    and the particles with a positive residual ranked and compacted; stats = [m, #NaN]."""
    m, nans = _peak(x_ptr, size, BLOCK)
    shift = _finite(m)
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], tl.float64)
    for start in range(0, size, BLOCK):
        idx = start + offs
        x = tl.load(x_ptr + idx, mask=idx < size, other=float("-inf")).to(tl.float64)
        acc += tl.exp(x - shift)
    total = tl.sum(acc, 0)
    total = tl.where(total > 0.0, total, 1.0)
    copies = tl.full([], 0, tl.int64)
    carry = tl.full([], 0.0, tl.float64)
    count = tl.full([], 0, tl.int32)
    for start in range(0, size, BLOCK):
        idx = start + offs
        inside = idx < size
        x = tl.load(x_ptr + idx, mask=inside, other=float("-inf")).to(tl.float64)
        nw = n * (tl.exp(x - shift) / total)
        nw = tl.where((nw >= 0.0) & (nw <= n), nw, 0.0)  # NaN/inf only from inputs that raise
        whole = tl.floor(nw)
        rest = nw - whole
        c = copies + tl.cumsum(whole.to(tl.int64), 0)
        r = carry + tl.cumsum(rest, 0)
        tl.store(copies_ptr + idx, c, mask=inside)
        tl.store(rest_ptr + idx, r, mask=inside)
        count = _rank_live(inside & (rest > 0.0), idx, inside, count, rank_ptr, live_ptr)
        copies = tl.max(c, 0)
        carry = tl.max(r, 0)
    tl.store(stats_ptr, m)
    tl.store(stats_ptr + 1, nans.to(tl.float64))


@triton.jit
def _residual_counts_kernel(
    copies_ptr, rest_ptr, rank_ptr, live_ptr, sums_ptr, size, n, steps, cc_ptr,
    BLOCK: tl.constexpr,
):
    """cc_i = C_i + #{j < D : P_j / P_D < R_p / R_{N-1}}, p = max{j ≤ i : positive residual},
    D = n - C_{N-1} extra draws at sorted uniforms P_j / P_D; cc_i = C_i + D from the last
    positive residual on (where the reference clamps)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = i < size
    draws = (n - tl.load(copies_ptr + size - 1)).to(tl.int32)
    live_total = tl.load(rank_ptr + size - 1)
    last = tl.where(live_total > 0, tl.load(live_ptr + tl.maximum(live_total - 1, 0)), -1)
    rest_total = tl.load(rest_ptr + size - 1)
    rest_total = tl.where(rest_total > 0.0, rest_total, 1.0)
    norm = tl.load(sums_ptr + draws)
    norm = tl.where(norm > 0.0, norm, 1.0)
    rank = tl.load(rank_ptr + i, mask=inside, other=0)
    p = tl.load(live_ptr + tl.maximum(rank - 1, 0), mask=rank > 0, other=0)
    c = tl.load(rest_ptr + p, mask=rank > 0, other=0.0) / rest_total
    lo = tl.zeros([BLOCK], tl.int32)  # first j with P_j / P_D >= c, i.e. #{j : U_j < c}
    hi = lo + draws
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        u = tl.load(sums_ptr + mid, mask=active, other=0.0) / norm
        lo = tl.where(active & (u < c), mid + 1, lo)
        hi = tl.where(active & (u >= c), mid, hi)
    extra = tl.where(i >= last, draws, lo)
    cc = tl.load(copies_ptr + i, mask=inside, other=0) + extra
    tl.store(cc_ptr + i, cc, mask=inside)


@triton.jit
def _expand_kernel(cc_ptr, size, n, steps, out_ptr, BLOCK: tl.constexpr):
    """a_k = min{i : cc_i > k}: particle i fills the slots cc_{i-1} ≤ k < cc_i."""
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    lo = tl.zeros([BLOCK], tl.int32)
    hi = lo + size
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        c = tl.load(cc_ptr + mid, mask=active, other=0)
        lo = tl.where(active & (c <= k), mid + 1, lo)
        hi = tl.where(active & (c > k), mid, hi)
    tl.store(out_ptr + k, tl.minimum(lo, size - 1).to(tl.int64), mask=inside)


# --- host side ------------------------------------------------------------------------------------


def _interpreter_mode() -> bool | None:
    """True if these kernels run in Triton's interpreter, False if compiled, None if they cannot
    run: TRITON_INTERPRET changed between importing triton and this module (Triton's own library
    and these kernels were decorated in different modes)."""
    from triton.runtime.interpreter import InterpretedFunction

    ours = isinstance(_moments_kernel, InterpretedFunction)
    return ours if ours == isinstance(tl.cumsum, InterpretedFunction) else None


MODE = _interpreter_mode()
INTERPRETED = MODE is True

HOST_MESSAGE = (
    "backend='triton' runs on CUDA tensors; {what} runs in Triton's interpreter only, with "
    "TRITON_INTERPRET=1 set before triton is imported (for tests). On the CPU pass "
    "backend='numba' (the default for host data)"
)


def on_device(t: torch.Tensor, what: str) -> torch.Tensor:
    """``t`` itself if Triton can run on it here (CUDA, or the interpreter), else
    TritonUnavailableError saying why; ``what`` names the data in the message."""
    if MODE is None:
        raise TritonUnavailableError(
            "TRITON_INTERPRET changed between importing triton and kernels.triton_gpu; set it (or "
            "not) before triton is first imported"
        )
    if t.device.type != "cuda" and not INTERPRETED:
        raise TritonUnavailableError(HOST_MESSAGE.format(what=f"a {t.device.type} tensor"))
    return t


def launching_on(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` current while launching (Triton launches on the current CUDA device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def device_log_weights(values: Any) -> torch.Tensor:
    """A contiguous 1-D floating tensor on the weights' device (host data: interpreter only)."""
    if isinstance(values, torch.Tensor):
        t = on_device(values.detach(), "a tensor")
        if t.ndim != 1:
            raise ValueError(f"log-weights must be 1-D, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            t = t.to(torch.float64)
        return t.contiguous()
    kind = type(values).__name__
    if hasattr(values, "device") and not isinstance(values, np.ndarray):  # e.g. a CuPy array
        raise TypeError(f"backend='triton' takes torch tensors, got {kind}")
    if not INTERPRETED:
        raise TritonUnavailableError(HOST_MESSAGE.format(what=f"host data ({kind})"))
    return torch.from_numpy(as_log_weights(values))


def _read_stats(stats: torch.Tensor) -> list[float]:
    """[m, #NaN, ...] read back (the call's one sync), raising ValueError on NaN or +inf."""
    values = stats.tolist()
    check_peak(math.nan if values[1] else values[0])
    return values


def ess(log_weights: Any) -> float:
    """(Σ w)² / Σ w² from e_i = exp(l_i - max l); 0.0 when all are -inf (or none are given)."""
    x = device_log_weights(log_weights)
    if x.numel() == 0:
        return 0.0
    out = torch.empty(4, dtype=torch.float64, device=x.device)
    with launching_on(x.device):
        _moments_kernel[(1,)](x, x.numel(), out, BLOCK=SCAN_BLOCK)
    m, _, s, s2 = _read_stats(out)
    return 0.0 if m == -math.inf else s * s / s2


def logsumexp(log_weights: Any) -> float:
    """m + log Σ exp(l_i - m), m = max l; -inf when all are -inf (or none are given)."""
    x = device_log_weights(log_weights)
    if x.numel() == 0:
        return -math.inf
    out = torch.empty(4, dtype=torch.float64, device=x.device)
    with launching_on(x.device):
        _moments_kernel[(1,)](x, x.numel(), out, BLOCK=SCAN_BLOCK)
    m, _, s, _ = _read_stats(out)
    return -math.inf if m == -math.inf else m + math.log(s)


def resample(
    log_weights: Any, method: str, rng: np.random.Generator, n: int | None
) -> torch.Tensor:
    """Ancestor indices (int64 tensor on the weights' device, sorted, length ``n``, default N)."""
    x = device_log_weights(log_weights)
    with launching_on(x.device):
        return _resample(x, method, rng, n)


def _resample(
    x: torch.Tensor, method: str, rng: np.random.Generator, n: int | None
) -> torch.Tensor:
    """``resample`` once ``x`` is a 1-D tensor Triton can run on and its device is current."""
    size = x.numel()
    if size == 0:
        raise ValueError(ALL_DEAD)
    n = check_draws(n, size)
    dev = x.device
    stats = torch.empty(2, dtype=torch.float64, device=dev)
    rank = torch.empty(size, dtype=torch.int32, device=dev)
    live = torch.zeros(size, dtype=torch.int32, device=dev)
    if method == "residual" and n > 0:
        copies = torch.empty(size, dtype=torch.int64, device=dev)
        rest = torch.empty(size, dtype=torch.float64, device=dev)
        _residual_scan_kernel[(1,)](
            x, size, n, copies, rest, rank, live, stats, BLOCK=SCAN_BLOCK
        )
    else:
        cum = torch.empty(size, dtype=torch.float64, device=dev)
        _cumulative_kernel[(1,)](x, size, cum, rank, live, stats, BLOCK=SCAN_BLOCK)
    if _read_stats(stats)[0] == -math.inf:
        raise ValueError(ALL_DEAD)
    out = torch.empty(n, dtype=torch.int64, device=dev)
    if n == 0:
        return out
    u = reference.draw_uniforms(method, rng, n)
    if method in ("multinomial", "residual"):
        u = np.cumsum(u)  # P_j: the partial sums ``reference.sorted_uniforms`` divides
    grid = (triton.cdiv(n, DRAW_BLOCK),)
    if method == "residual":
        sums = torch.from_numpy(u).to(dev)
        cc = torch.empty(size, dtype=torch.int64, device=dev)
        _residual_counts_kernel[(triton.cdiv(size, DRAW_BLOCK),)](
            copies, rest, rank, live, sums, size, n, n.bit_length(), cc, BLOCK=DRAW_BLOCK
        )
        _expand_kernel[grid](cc, size, n, size.bit_length(), out, BLOCK=DRAW_BLOCK)
        return out
    if method == "systematic":
        points, u0 = cum, float(u[0])
    else:
        points, u0 = torch.from_numpy(u).to(dev), 0.0
    _invert_kernel[grid](
        cum, rank, live, size, size.bit_length(), points, u0, n, out,
        SCHEME=SCHEME_CODES[method], BLOCK=DRAW_BLOCK,
    )
    return out
