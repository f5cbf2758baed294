"""Sync-free torch kernels of the device step: token draws and log Zₜ, ESS, logsumexp, resampling.

Every function takes and returns tensors on one device and never reads a value back to the
host (no ``.item()``, no shape that depends on data), so a CUDA stream runs a whole step
without waiting.  Laws, with w = exp(l − max l) (−inf = dead):

  draw_tokens  v_r ~ exp(s_r,v) / Z_r by the inverse CDF at one uniform per row, and
               log Z_r = log Σ_v exp(s_r,v); a row with Z_r = 0 draws −1 (log Z_r = −inf).
  ess          (Σ w)² / Σ w²; 0 when every l = −inf.
  logsumexp    log Σ exp(l_i); −inf when every l = −inf.
  resample     the four laws of ``kernels.reference`` (multinomial, stratified, systematic,
               residual): a_k = min{i : C_i > u_k}, C the normalised cumulative weights, at the
               scheme's sorted points u; the randomness (``draw_randomness``) comes from a torch
               Generator on the device.  Given the same randomness the ancestors equal the
               reference's, except where a point lies within an ulp of a boundary.

Both inverse CDFs snap an index to the last entry ≤ it with positive mass, so a zero-mass token
or a dead particle is never chosen even when a parallel scan (CUDA) rounds a flat stretch of the
cumulative sum up by an ulp, or a point rounds up to the total.  With every weight −inf,
``resample`` returns in-range garbage (the caller's decision never uses it).
"""

from __future__ import annotations

import math

import torch

NEG_INF = -math.inf


def _snap(positive: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """max{j ≤ idx : positive_j} along the last axis (the first positive when there is none):
    with rank_j = #{i ≤ j : positive_i} (an exact integer scan), the rank_idx-th positive."""
    size = positive.shape[-1]
    rank = torch.cumsum(positive, dim=-1, dtype=torch.int32)
    r = rank.gather(-1, idx.clamp(0, size - 1)).clamp_(min=1)
    return torch.searchsorted(rank, r).clamp_(max=size - 1)


def draw_tokens(scores: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens int64 (R,), log Z float64 (R,)) of scores (R, V) (−inf banned), u (R,) in [0, 1)."""
    m = scores.amax(dim=1, keepdim=True)
    ok = m > NEG_INF
    shift = torch.where(ok, m, torch.zeros_like(m))
    e = torch.exp(scores - shift)  # in the scores' dtype; the running sums in float64
    cdf = torch.cumsum(e, dim=1, dtype=torch.float64)
    total = cdf[:, -1:]
    idx = torch.searchsorted(cdf, u.view(-1, 1).double() * total, right=True)
    tokens = _snap(e > 0, idx).view(-1)
    ok = ok.view(-1)
    log_z = shift.view(-1).double() + torch.log(total.view(-1))
    return torch.where(ok, tokens, -1), torch.where(ok, log_z, NEG_INF)


def _unnormalised(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(e, alive): e_i = exp(l_i − max l), alive = whether any l_i > −inf (a 0-d bool)."""
    m = log_w.amax()
    alive = m > NEG_INF
    return torch.exp(log_w - torch.where(alive, m, torch.zeros_like(m))), alive


def ess(log_w: torch.Tensor) -> torch.Tensor:
    """(Σ w)² / Σ w² as a 0-d float64 tensor (0 when every log-weight is −inf)."""
    e, alive = _unnormalised(log_w.double())
    s, s2 = e.sum(), (e * e).sum()
    return torch.where(alive, s * s / s2, torch.zeros_like(s))


def logsumexp(log_w: torch.Tensor) -> torch.Tensor:
    """log Σ exp(l_i) as a 0-d float64 tensor (−inf when every log-weight is −inf)."""
    x = log_w.double()
    m = x.amax()
    alive = m > NEG_INF
    shift = torch.where(alive, m, torch.zeros_like(m))
    return torch.where(alive, shift + torch.log(torch.exp(x - shift).sum()), m)


def draw_randomness(method: str, n: int, gen: torch.Generator,
                    device: torch.device) -> torch.Tensor:
    """What each scheme consumes, as ``kernels.reference.draw_uniforms``: systematic one
    U(0, 1), stratified n, multinomial and residual n + 1 Exp(1) spacings (float64)."""
    if method == "systematic":
        return torch.rand(1, generator=gen, dtype=torch.float64, device=device)
    if method == "stratified":
        return torch.rand(n, generator=gen, dtype=torch.float64, device=device)
    out = torch.empty(n + 1, dtype=torch.float64, device=device)
    return out.exponential_(generator=gen)


def _invert(e: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """a_k = min{i : C_i > u_k} snapped to a positive e, C_i = Σ_{j≤i} e_j / Σ_j e_j."""
    c = torch.cumsum(e, dim=0)
    c = c / c[-1:]
    return _snap(e > 0, torch.searchsorted(c, points, right=True))


def resample(log_w: torch.Tensor, method: str, u: torch.Tensor) -> torch.Tensor:
    """N ancestor indices (int64, sorted ascending) of the N log-weights ``log_w`` by ``method``,
    from the randomness ``u`` of ``draw_randomness``."""
    e, _ = _unnormalised(log_w.double())
    n = e.numel()
    dev = e.device
    k = torch.arange(n, dtype=torch.float64, device=dev)
    if method == "systematic":
        return _invert(e, (k + u[0]) / n)
    if method == "stratified":
        return _invert(e, (k + u[:n]) / n)
    s = torch.cumsum(u, dim=0)  # S_j: partial sums of Exp(1) spacings
    if method == "multinomial":
        return _invert(e, s[:n] / s[n])
    if method != "residual":
        raise ValueError(f"unknown resampling method {method!r}")
    nw = n * (e / torch.cumsum(e, dim=0)[-1])  # the reference's sequential total
    copies = torch.floor(nw)
    counts = copies.to(torch.int64)
    draws = (n - counts.sum()).clamp(0, n)  # R residual draws, a 0-d tensor
    # the first R sorted uniforms of R + 1 spacings: S_j / S_{R+1}, j ≤ R
    points = s[:n] / s.gather(0, draws.view(1))
    extra = _invert(nw - copies, points)
    take = (torch.arange(n, device=dev) < draws).to(torch.int64)
    counts = counts.scatter_add(0, extra, take)
    ends = torch.cumsum(counts, dim=0)
    idx = torch.searchsorted(ends, torch.arange(n, device=dev), right=True)
    return idx.clamp_(max=n - 1)
