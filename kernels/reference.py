"""NumPy reference kernels: the readable definition of each resampling law.

Every scheme turns N log-weights l and sorted points u_1 ≤ … ≤ u_n in [0, 1] into ancestors
by the inverse CDF, a_k = min{i : C_i > u_k} with C_i = Σ_{j≤i} w_j, so ancestors are sorted
ascending.  The schemes differ only in how the points are made from their randomness ``u``,
the array ``draw_uniforms`` returns (every scheme takes ``(log_w, u, n)``).

Callers validate first: ``log_w`` is a 1-D float64 array with no NaN or +inf, and the
resampling kernels need at least one finite entry.  Sums that feed the cumulative weights are
sequential (``np.cumsum``) so that the Numba loops in ``numba_cpu`` reproduce them bit for bit.
"""

from __future__ import annotations

import math

import numpy as np


def draw_uniforms(method: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """The randomness each scheme consumes, drawn here so every backend sees the same numbers.

    systematic: one U(0, 1); stratified: n iid U(0, 1); multinomial and residual: n + 1 iid
    Exp(1), turned into sorted uniforms by ``sorted_uniforms`` (no sort needed).
    """
    if method == "systematic":
        return rng.random(1)
    if method == "stratified":
        return rng.random(n)
    return rng.standard_exponential(n + 1)


def peak(log_w: np.ndarray) -> float:
    """max_i l_i; NaN if any entry is NaN (NaN propagates through ``max``)."""
    return float(log_w.max())


def sorted_uniforms(spacings: np.ndarray, k: int) -> np.ndarray:
    """Order statistics of k iid U(0, 1): u_j = S_j / S_{k+1}, S_j = E_1 + … + E_j, E iid Exp(1).

    (Normalised partial sums of exponentials are distributed as sorted uniforms, so sampling
    n iid draws needs no O(n log n) sort.)
    """
    s = np.cumsum(spacings[: k + 1])
    return s[:k] / s[k]


def unnormalised(log_w: np.ndarray) -> np.ndarray:
    """e_i = exp(l_i - max l) ∈ [0, 1] with max e = 1: no overflow, no underflow of the total."""
    return np.exp(log_w - log_w.max())


def cumulative(e: np.ndarray) -> tuple[np.ndarray, int]:
    """C_i = Σ_{j≤i} e_j / Σ_j e_j and the last index with e_i > 0.

    The total is the last cumulative sum itself, so C_{N-1} is exactly 1.0 (as is every C_i
    after the last live particle).
    """
    c = np.cumsum(e)
    c /= c[-1]
    return c, int(np.flatnonzero(e)[-1])


def invert(c: np.ndarray, last: int, points: np.ndarray) -> np.ndarray:
    """a_k = min(min{i : C_i > u_k}, last) for sorted points u.

    The strict ``>`` steps over zero weights; the clamp to ``last`` catches a point rounded up
    to 1.0, so an index never runs off the end nor lands on a dead tail.
    """
    idx = np.searchsorted(c, points, side="right").astype(np.int64, copy=False)
    np.minimum(idx, last, out=idx)
    return idx


def multinomial(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """n iid draws from w, the inverse CDF at n sorted uniforms: counts ~ Multinomial(n, w)."""
    c, last = cumulative(unnormalised(log_w))
    return invert(c, last, sorted_uniforms(u, n))


def stratified(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """One point per stratum, u_k = (k + U_k)/n: unbiased, and |count_i - n w_i| < 2."""
    c, last = cumulative(unnormalised(log_w))
    return invert(c, last, (np.arange(n) + u[:n]) / n)


def systematic(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """One shared uniform, u_k = (k + U)/n: unbiased, and count_i ∈ {⌊n w_i⌋, ⌈n w_i⌉}."""
    c, last = cumulative(unnormalised(log_w))
    return invert(c, last, (np.arange(n) + u[0]) / n)


def residual(log_w: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """⌊n w_i⌋ copies of each i, then R = n - Σ⌊n w_i⌋ multinomial draws from the residuals
    r_i = n w_i - ⌊n w_i⌋ (R sorted uniforms from the first R + 1 exponentials)."""
    e = unnormalised(log_w)
    nw = n * (e / np.cumsum(e)[-1])
    copies = np.floor(nw)
    counts = copies.astype(np.int64)
    draws = n - int(copies.sum())
    if draws > 0:
        c, last = cumulative(nw - copies)
        extra = invert(c, last, sorted_uniforms(u, draws))
        counts += np.bincount(extra, minlength=log_w.size)
    return np.repeat(np.arange(log_w.size, dtype=np.int64), counts)


def ess(log_w: np.ndarray) -> float:
    """Effective sample size (Σ w)² / Σ w², from e_i = exp(l_i - max l); 0.0 when all are -inf."""
    if log_w.size == 0 or log_w.max() == -math.inf:
        return 0.0
    e = unnormalised(log_w)
    s = e.sum()
    return float(s * s / np.dot(e, e))


def logsumexp(log_w: np.ndarray) -> float:
    """log Σ exp(l_i) = m + log Σ exp(l_i - m), m = max l; -inf when all are -inf."""
    if log_w.size == 0:
        return -math.inf
    m = log_w.max()
    if m == -math.inf:
        return -math.inf
    return float(m + np.log(np.exp(log_w - m).sum()))


# --- token bitmasks: bit j of 32-bit word k allows token 32k + j (xgrammar / llguidance layout) ---


def _host(a: object) -> np.ndarray:
    """A NumPy view (torch tensors are detached and copied to the host)."""
    if not isinstance(a, np.ndarray) and hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def unpack_bitmask(bitmask: object, vocab: int) -> np.ndarray:
    """allowed[..., t] = bit t % 32 of bitmask[..., t // 32], for t < vocab (a bool array)."""
    words = np.ascontiguousarray(_host(bitmask)).view(np.uint32)
    bits = (words[..., :, None] >> np.arange(32, dtype=np.uint32)) & np.uint32(1)
    return bits.reshape(*words.shape[:-1], -1)[..., :vocab].astype(bool)


def pack_bitmask(allowed: object) -> object:
    """words[..., k] = Σ_j allowed[..., 32k + j]·2^j as int32, ⌈V/32⌉ words (the last one padded
    with zeros); a torch bool tensor gives an int32 tensor on its device."""
    if not isinstance(allowed, np.ndarray) and hasattr(allowed, "detach"):
        import torch

        bits = allowed.detach().to(torch.int64)
        vocab = bits.shape[-1]
        bits = torch.nn.functional.pad(bits, (0, -vocab % 32))
        bits = bits.reshape(*bits.shape[:-1], -1, 32)
        words = (bits << torch.arange(32, device=bits.device)).sum(-1)
        return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    a = np.asarray(allowed, dtype=bool)
    if a.ndim == 0:
        raise ValueError("allowed must have a vocabulary axis, got a scalar")
    pad = [(0, 0)] * (a.ndim - 1) + [(0, -a.shape[-1] % 32)]
    a = np.pad(a, pad).reshape(*a.shape[:-1], -1, 32)
    packed = np.packbits(a, axis=-1, bitorder="little")  # 4 bytes per word, low byte first
    return np.ascontiguousarray(packed).view("<u4")[..., 0].astype(np.uint32).view(np.int32)


def apply_token_bitmask_(logits: object, bitmask: object) -> object:
    """In place, logits[..., t] = -inf where token t is not allowed; returns logits.

    NumPy arrays by boolean assignment, torch tensors (any device) by ``masked_fill_``.
    """
    vocab = logits.shape[-1]
    banned = ~unpack_bitmask(bitmask, vocab)
    if isinstance(logits, np.ndarray):
        logits[banned] = -np.inf
        return logits
    import torch

    logits.masked_fill_(torch.from_numpy(banned).to(logits.device), -math.inf)
    return logits


SCHEMES = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}
