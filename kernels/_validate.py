"""Input checks shared by every entry point: names, where the weights live, and their values.

Log-weights are a 1-D float64 array with entries in [-inf, +inf); -inf marks a dead particle.
NaN and +inf are caught by one reduction, the backend's ``peak`` (NaN propagates through max).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

METHODS = ("multinomial", "stratified", "systematic", "residual")
BACKENDS = ("numpy", "numba", "triton")

TRITON_MESSAGE = (
    "Triton kernels arrive with the GPU issue; for now pass backend='numba' or 'numpy', "
    "which copy the tensor to the host"
)


def check_method(method: str) -> str:
    """Return ``method`` if it names a resampling scheme, else raise ValueError."""
    if method not in METHODS:
        allowed = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"unknown resampling method {method!r}; allowed: {allowed}")
    return method


def device_of(log_weights: Any) -> str:
    """``'cuda'`` for a CUDA tensor, else ``'cpu'``; reads attributes only (no torch import)."""
    if isinstance(log_weights, np.ndarray):
        return "cpu"
    device = getattr(log_weights, "device", None)
    return "cuda" if getattr(device, "type", None) == "cuda" else "cpu"


def choose_backend(backend: str | None, device: str) -> str:
    """The backend to run: ``None`` means Triton for CUDA tensors and Numba for everything else."""
    if backend is None:
        backend = "triton" if device == "cuda" else "numba"
    if backend not in BACKENDS:
        allowed = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"unknown backend {backend!r}; allowed: {allowed} (or None)")
    if backend == "triton":
        raise NotImplementedError(TRITON_MESSAGE)
    return backend


def as_log_weights(log_weights: Any) -> np.ndarray:
    """A contiguous 1-D float64 host array; torch tensors are detached and copied to the CPU."""
    if not isinstance(log_weights, np.ndarray) and hasattr(log_weights, "detach"):
        log_weights = log_weights.detach().cpu().double().numpy()
    x = np.ascontiguousarray(log_weights, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"log-weights must be 1-D, got shape {x.shape}")
    return x


def check_peak(m: float) -> float:
    """Return m = max_i l_i (a backend's ``peak``), raising ValueError if it is NaN or +inf."""
    if math.isnan(m):
        raise ValueError("log-weights contain NaN")
    if m == math.inf:
        raise ValueError("log-weights contain +inf")
    return m


def check_draws(n: Any, size: int) -> int:
    """The number of ancestors to draw: ``size`` when ``n`` is None, else a non-negative int."""
    if n is None:
        return size
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n
