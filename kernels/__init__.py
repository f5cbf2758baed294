"""Numeric kernels for SMC: resampling, ESS and logsumexp of log-weights, token-bitmask masking.

Laws, for N particles with normalised weights w and n draws (a_k ancestors, c_i counts):
  multinomial  n iid draws from w: c ~ Multinomial(n, w).
  stratified   one uniform per stratum [k/n, (k+1)/n): |c_i - n w_i| < 2.
  systematic   one shared uniform, points (k + U)/n: c_i ∈ {⌊n w_i⌋, ⌈n w_i⌉}.
  residual     ⌊n w_i⌋ copies, then multinomial on the residuals n w_i - ⌊n w_i⌋.
All four are unbiased (E c_i = n w_i), never pick a dead particle (log-weight -inf), and return
ancestors sorted ascending.  Backends: "numpy" (reference.py, the readable definition), "numba"
(numba_cpu.py, disk-cached compiled loops; the default on the CPU) and "triton" (triton_gpu.py,
triton_bitmask.py; the default for CUDA tensors, on CPU tensors only under TRITON_INTERPRET=1).
Uniforms are drawn in NumPy from ``seed`` (an int, None or a ``numpy.random.Generator``, which is
advanced) and handed to the backend, so every backend returns the same ancestors for the same
seed (Triton's parallel scan may move one only where a point is within an ulp of a boundary).
numpy and numba return a NumPy array; triton returns an int64 tensor on the weights' device.

``apply_token_bitmask(logits, bitmask)`` sets logits[r, t] = -inf in place wherever bit t % 32
of the int32 word bitmask[r, t // 32] is 0 (the xgrammar / llguidance layout); ``pack_bitmask``
builds such words from a boolean array.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from kernels import reference
from kernels._validate import (
    ALL_DEAD,
    BACKENDS,
    METHODS,
    TritonUnavailableError,
    as_log_weights,
    bitmask_shape,
    check_draws,
    check_method,
    check_peak,
    choose_backend,
    device_of,
)

__all__ = [
    "BACKENDS",
    "METHODS",
    "TritonUnavailableError",
    "apply_token_bitmask",
    "ess",
    "logsumexp",
    "pack_bitmask",
    "resample",
    "unpack_bitmask",
]

Seed = int | np.random.Generator | None

_loaded: dict[str, ModuleType] = {"numpy": reference}


def _module(backend: str) -> ModuleType:
    """The backend's module; Numba and Triton are imported on first use (each takes a moment)."""
    module = _loaded.get(backend)
    if module is None:
        if backend == "numba":
            from kernels import numba_cpu as module
        else:
            try:
                from kernels import triton_gpu as module
            except ImportError as err:
                raise TritonUnavailableError(
                    f"backend='triton' needs the triton and torch packages ({err}); "
                    "on the CPU pass backend='numba'"
                ) from err
        _loaded[backend] = module
    return module


def _bitmask_module(backend: str) -> ModuleType:
    """The module holding the backend's ``apply_token_bitmask_``."""
    if backend != "triton":
        return _module(backend)
    _module(backend)  # the same import checks
    from kernels import triton_bitmask

    return triton_bitmask


def _generator(seed: Seed) -> np.random.Generator:
    """``seed`` itself if it is a Generator (the caller's stream advances), else a new one."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _prepare(log_weights: Any, name: str) -> tuple[np.ndarray, float, ModuleType]:
    """Copy the weights to a float64 host array for a host backend and check their values."""
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
) -> Any:
    """Ancestor indices (int64, sorted ascending, length ``n``, default N) drawn by ``method``:
    a NumPy array from numpy/numba, a tensor on the weights' device from triton."""
    check_method(method)
    name = choose_backend(backend, device_of(log_weights))
    if name == "triton":
        return _module(name).resample(log_weights, method, _generator(seed), n)
    x, m, module = _prepare(log_weights, name)
    if m == -math.inf:
        raise ValueError(ALL_DEAD)
    n = check_draws(n, x.size)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    u = reference.draw_uniforms(method, _generator(seed), n)
    return module.SCHEMES[method](x, u, n)


def ess(log_weights: Any, backend: str | None = None) -> float:
    """Effective sample size (Σ w)² / Σ w², in [1, N]; 0.0 when every log-weight is -inf."""
    name = choose_backend(backend, device_of(log_weights))
    if name == "triton":
        return _module(name).ess(log_weights)
    x, _, module = _prepare(log_weights, name)
    return float(module.ess(x))


def logsumexp(log_weights: Any, backend: str | None = None) -> float:
    """log Σ_i exp(l_i), computed stably; -inf when every log-weight is -inf (or none are given)."""
    name = choose_backend(backend, device_of(log_weights))
    if name == "triton":
        return _module(name).logsumexp(log_weights)
    x, _, module = _prepare(log_weights, name)
    return float(module.logsumexp(x))


def apply_token_bitmask(logits: Any, bitmask: Any, backend: str | None = None) -> Any:
    """In place, logits[r, t] = -inf unless bit t % 32 of bitmask[r, t // 32] is 1; returns logits.

    ``logits``: a floating (rows, V) or (V,) NumPy array or tensor; ``bitmask``: int32 (or
    uint32) words of shape (rows, ⌈V/32⌉) or wider (bits past V are ignored), e.g. from
    ``pack_bitmask``.  Triton runs on CUDA tensors; numba on host data (a CUDA tensor makes a
    round trip to the host); numpy is the reference (NumPy indexing, torch ``masked_fill_``).
    """
    if not hasattr(bitmask, "shape"):
        bitmask = np.asarray(bitmask)
    if not hasattr(logits, "shape") or isinstance(logits, np.generic):
        raise TypeError(f"logits must be an array or a tensor, got {type(logits).__name__}")
    bitmask_shape(logits, bitmask)
    name = choose_backend(backend, device_of(logits))
    return _bitmask_module(name).apply_token_bitmask_(logits, bitmask)


def pack_bitmask(allowed: Any) -> Any:
    """int32 words, bit t % 32 of word t // 32 = allowed[..., t]: shape (..., ⌈V/32⌉) for
    (..., V) booleans (a torch tensor gives a tensor on its device, anything else NumPy)."""
    return reference.pack_bitmask(allowed)


def unpack_bitmask(bitmask: Any, vocab: int) -> np.ndarray:
    """The boolean (..., vocab) array that ``pack_bitmask`` packed (a NumPy array)."""
    return reference.unpack_bitmask(bitmask, vocab)
