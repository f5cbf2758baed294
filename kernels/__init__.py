"""Resampling kernels for SMC: ancestor indices, ESS and logsumexp from log-weights.

Laws, for N particles with normalised weights w and n draws (a_k ancestors, c_i counts):
  multinomial  n iid draws from w: c ~ Multinomial(n, w).
  stratified   one uniform per stratum [k/n, (k+1)/n): |c_i - n w_i| < 2.
  systematic   one shared uniform, points (k + U)/n: c_i ∈ {⌊n w_i⌋, ⌈n w_i⌉}.
  residual     ⌊n w_i⌋ copies, then multinomial on the residuals n w_i - ⌊n w_i⌋.
All four are unbiased (E c_i = n w_i), never pick a dead particle (log-weight -inf), and return
ancestors sorted ascending.  Backends: "numpy" (reference.py, the readable definition), "numba"
(numba_cpu.py, disk-cached compiled loops; the default on the CPU) and "triton" (the default for
CUDA tensors; not implemented yet).  Uniforms are drawn in NumPy from ``seed`` (an int, None or
a ``numpy.random.Generator``, which is advanced) and handed to the backend, so numpy and numba
return identical ancestors for the same seed.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from kernels import reference
from kernels._validate import (
    BACKENDS,
    METHODS,
    as_log_weights,
    check_draws,
    check_method,
    check_peak,
    choose_backend,
    device_of,
)

__all__ = ["BACKENDS", "METHODS", "ess", "logsumexp", "resample"]

Seed = int | np.random.Generator | None

_loaded: dict[str, ModuleType] = {"numpy": reference}


def _module(backend: str) -> ModuleType:
    """The backend's module; Numba is imported on first use (its import takes a moment)."""
    module = _loaded.get(backend)
    if module is None:
        from kernels import numba_cpu

        module = _loaded[backend] = numba_cpu
    return module


def _prepare(log_weights: Any, backend: str | None) -> tuple[np.ndarray, float, ModuleType]:
    """Pick the backend, copy the weights to a float64 host array and check their values."""
    name = choose_backend(backend, device_of(log_weights))
    x = as_log_weights(log_weights)
    module = _module(name)
    m = check_peak(float(module.peak(x))) if x.size else -math.inf
    return x, m, module


def resample(
    log_weights: Any,
    method: str = "systematic",
    seed: Seed = 0,
    backend: str | None = None,
    n: int | None = None,
) -> np.ndarray:
    """Ancestor indices (int64, sorted ascending, length ``n``, default N) drawn by ``method``."""
    check_method(method)
    x, m, module = _prepare(log_weights, backend)
    if m == -math.inf:
        raise ValueError("cannot resample: every particle has weight zero (all log-weights -inf)")
    n = check_draws(n, x.size)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    u = reference.draw_uniforms(method, rng, n)
    return module.SCHEMES[method](x, u, n)


def ess(log_weights: Any, backend: str | None = None) -> float:
    """Effective sample size (Σ w)² / Σ w², in [1, N]; 0.0 when every log-weight is -inf."""
    x, _, module = _prepare(log_weights, backend)
    return float(module.ess(x))


def logsumexp(log_weights: Any, backend: str | None = None) -> float:
    """log Σ_i exp(l_i), computed stably; -inf when every log-weight is -inf (or none are given)."""
    x, _, module = _prepare(log_weights, backend)
    return float(module.logsumexp(x))
