"""Input checks shared by every entry point: names, where the data live, and their values.

Log-weights are a 1-D float64 array with entries in [-inf, +inf); -inf marks a dead particle.
NaN and +inf are caught by one reduction, the backend's ``peak`` (NaN propagates through max).
A token bitmask packs one bit per logit column into 32-bit words: (rows, ⌈V/32⌉) for (rows, V).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

METHODS = ("multinomial", "stratified", "systematic", "residual")
BACKENDS = ("numpy", "numba", "triton")

ALL_DEAD = "cannot resample: every particle has weight zero (all log-weights -inf)"

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_WORDS = ("int32", "uint32")


class TritonUnavailableError(RuntimeError):
    """backend='triton' cannot run here: triton is missing, or the data are in host memory and
    Triton's interpreter (TRITON_INTERPRET=1) is off."""


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


def _dtype_name(dtype: Any) -> str:
    """'float32' for both ``numpy.float32`` and ``torch.float32``."""
    return str(dtype).removeprefix("torch.")


def bitmask_shape(logits: Any, bitmask: Any) -> tuple[int, int]:
    """(rows, V) of ``logits`` after checking that ``bitmask`` holds ⌈V/32⌉ (or more) 32-bit
    words per row; 1-D logits are one row.  Raises TypeError or ValueError."""
    lshape, bshape = tuple(logits.shape), tuple(bitmask.shape)
    if len(lshape) not in (1, 2):
        raise ValueError(f"logits must be (rows, vocab) or (vocab,), got shape {lshape}")
    if _dtype_name(logits.dtype) not in _FLOATS:
        raise TypeError(f"logits must be floating point, got {_dtype_name(logits.dtype)}")
    if _dtype_name(bitmask.dtype) not in _WORDS:
        kind = _dtype_name(bitmask.dtype)
        raise TypeError(f"bitmask must be int32 (or uint32) words, got {kind}")
    vocab = lshape[-1]
    words = -(-vocab // 32)
    if len(bshape) != len(lshape) or bshape[:-1] != lshape[:-1] or bshape[-1] < words:
        expected = (*lshape[:-1], words)
        raise ValueError(
            f"bitmask shape {bshape} does not fit logits shape {lshape}: expected {expected} "
            "(one bit per token, bit j of word k = token 32k + j)"
        )
    return (lshape[0] if len(lshape) == 2 else 1), vocab
