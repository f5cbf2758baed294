"""Numba kernels: the laws of ``reference`` as one compiled O(N + n) loop per scheme.

Each scheme merges its sorted points u_1 ≤ … ≤ u_n against the cumulative weights C in one
forward sweep, a_k = min(min{i : C_i > u_k}, last), instead of a binary search per point.
The arithmetic follows ``reference`` operation for operation (sequential sums, the same
divisions), so both backends return identical ancestors for the same uniforms, provided NumPy's
exp and the C library's agree bit for bit (NumPy's AVX-512 exp may differ by an ulp, which moves
an ancestor only if a point lies within an ulp of a cumulative boundary).  Compiled code is
cached on disk (``cache=True``); the first call in a fresh environment compiles.  The token
bitmask loop writes -inf into logits in place, skipping words whose 32 tokens are all allowed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from kernels import reference


@numba.njit(cache=True)
def peak(log_w: np.ndarray) -> float:
    """max_i l_i; NaN if any entry is NaN (as NumPy's ``max``)."""
    m = -np.inf
    for i in range(log_w.size):
        v = log_w[i]
        if v > m:
            m = v
        elif v != v:
            return np.nan
    return m


@numba.njit(cache=True)
def _unnormalised(log_w: np.ndarray) -> np.ndarray:
    """e_i = exp(l_i - max l)."""
    m = peak(log_w)
    e = np.empty(log_w.size)
    for i in range(log_w.size):
        e[i] = np.exp(log_w[i] - m)
    return e


@numba.njit(cache=True)
def _cumulative(e: np.ndarray) -> tuple[np.ndarray, int]:
    """C_i = Σ_{j≤i} e_j / Σ_j e_j (so C_{N-1} = 1.0 exactly) and the last i with e_i > 0."""
    c = np.empty(e.size)
    acc = 0.0
    last = -1
    for i in range(e.size):
        acc += e[i]
        c[i] = acc
        if e[i] > 0.0:
            last = i
    for i in range(e.size):
        c[i] /= acc
    return c, last


@numba.njit(cache=True)
def _log_cumulative(log_w: np.ndarray) -> tuple[np.ndarray, int]:
    """``_cumulative(_unnormalised(log_w))`` fused into one pass over exp(l_i - max l)."""
    m = peak(log_w)
    c = np.empty(log_w.size)
    acc = 0.0
    last = -1
    for i in range(log_w.size):
        e = np.exp(log_w[i] - m)
        acc += e
        c[i] = acc
        if e > 0.0:
            last = i
    for i in range(log_w.size):
        c[i] /= acc
    return c, last


@numba.njit(cache=True)
def _merge_spacings(c: np.ndarray, last: int, spacings: np.ndarray, out: np.ndarray) -> None:
    """out_j = min(min{i : C_i > u_j}, last) at the sorted uniforms u_j = S_j / S_{k+1}
    (S partial sums of the exponential spacings, k = out.size), in one sweep."""
    k = out.size
    total = 0.0
    for j in range(k + 1):
        total += spacings[j]
    s = 0.0
    i = 0
    for j in range(k):
        s += spacings[j]
        x = s / total
        while i < last and c[i] <= x:
            i += 1
        out[j] = i


@numba.njit(cache=True)
def multinomial(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """n iid draws from w: the inverse CDF at n sorted uniforms made from n + 1 exponentials."""
    c, last = _log_cumulative(log_w)
    out = np.empty(n, dtype=np.int64)
    _merge_spacings(c, last, u, out)
    return out


@numba.njit(cache=True)
def stratified(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """One point per stratum, u_k = (k + U_k)/n."""
    c, last = _log_cumulative(log_w)
    out = np.empty(n, dtype=np.int64)
    i = 0
    for k in range(n):
        x = (k + u[k]) / n
        while i < last and c[i] <= x:
            i += 1
        out[k] = i
    return out


@numba.njit(cache=True)
def systematic(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """One shared uniform, u_k = (k + U)/n."""
    c, last = _log_cumulative(log_w)
    out = np.empty(n, dtype=np.int64)
    u0 = u[0]
    i = 0
    for k in range(n):
        x = (k + u0) / n
        while i < last and c[i] <= x:
            i += 1
        out[k] = i
    return out


@numba.njit(cache=True)
def residual(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """⌊n w_i⌋ copies of each i, then multinomial draws from the residuals n w_i - ⌊n w_i⌋."""
    e = _unnormalised(log_w)
    size = e.size
    total = 0.0
    for i in range(size):
        total += e[i]
    counts = np.empty(size, dtype=np.int64)
    rest = np.empty(size)
    draws = n
    for i in range(size):
        nw = n * (e[i] / total)
        copies = np.floor(nw)
        counts[i] = int(copies)
        rest[i] = nw - copies
        draws -= counts[i]
    if draws > 0:
        c, last = _cumulative(rest)
        extra = np.empty(draws, dtype=np.int64)
        _merge_spacings(c, last, u, extra)
        for k in range(draws):
            counts[extra[k]] += 1
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(size):
        for _ in range(counts[i]):
            out[k] = i
            k += 1
    return out


@numba.njit(cache=True)
def ess(log_w: np.ndarray) -> float:
    """(Σ w)² / Σ w² from e_i = exp(l_i - max l); 0.0 when all are -inf."""
    m = peak(log_w)
    if m == -np.inf:
        return 0.0
    s = 0.0
    s2 = 0.0
    for i in range(log_w.size):
        e = math.exp(log_w[i] - m)
        s += e
        s2 += e * e
    return s * s / s2


@numba.njit(cache=True)
def logsumexp(log_w: np.ndarray) -> float:
    """m + log Σ exp(l_i - m), m = max l; -inf when all are -inf."""
    m = peak(log_w)
    if m == -np.inf:
        return -np.inf
    s = 0.0
    for i in range(log_w.size):
        s += math.exp(log_w[i] - m)
    return m + math.log(s)


@numba.njit(cache=True)
def _mask_rows(bits: np.ndarray, words: np.ndarray, vocab: int, pattern: int) -> None:
    """bits[r, t] = pattern (the bits of -inf) wherever bit t % 32 of words[r, t // 32] is 0."""
    for r in range(bits.shape[0]):
        for k in range((vocab + 31) // 32):
            w = words[r, k]
            if w == -1:  # all 32 allowed
                continue
            for j in range(min(32, vocab - 32 * k)):
                if (w >> j) & 1 == 0:
                    bits[r, 32 * k + j] = pattern


def apply_token_bitmask_(logits: object, bitmask: object) -> object:
    """In place, logits[..., t] = -inf where bit t % 32 of bitmask[..., t // 32] is 0.

    Writes the bit pattern of -inf through a same-size integer view, so every float dtype
    (bfloat16 too) takes one compiled loop; a tensor off the CPU goes to the host and back.
    """
    words = np.ascontiguousarray(reference._host(bitmask)).view(np.int32)
    if isinstance(logits, np.ndarray):
        itype = np.dtype(f"int{8 * logits.itemsize}")
        _mask_bits(logits.view(itype), words, np.array(-np.inf, logits.dtype).view(itype).item())
        return logits
    import torch

    t = logits.detach()
    host = t if t.device.type == "cpu" else t.cpu()
    itype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[host.element_size()]
    pattern = torch.tensor(-math.inf, dtype=host.dtype).view(itype).item()
    _mask_bits(host.view(itype).numpy(), words, pattern)
    if host is not t:
        t.copy_(host)
    return logits


def _mask_bits(bits: np.ndarray, words: np.ndarray, pattern: int) -> None:
    """``_mask_rows`` on (rows, V) views of 1-D or 2-D data."""
    if bits.ndim == 1:
        bits, words = bits[None, :], words.reshape(1, -1)
    if bits.size:
        _mask_rows(bits, words, bits.shape[1], bits.dtype.type(pattern))


SCHEMES = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}
