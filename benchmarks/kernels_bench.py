"""Micro-benchmark of the kernels: one call's latency, median and p99 in microseconds.

For N = 64, 256, 1024, 4096 log-weights (normal with sd 2, a fifth of them -inf) it times
``kernels.resample`` (each scheme, n = N), ``kernels.ess`` and ``kernels.logsumexp`` with the
numpy reference and numba on a host array, and, when a CUDA device is present, triton on a CUDA
tensor (each call synchronised, so a time is the latency a caller sees) next to numba fed the
same CUDA tensor (which includes the copy to the host).  Without a GPU the triton columns say so:
Triton's interpreter is a test tool, not something to time.

    python benchmarks/kernels_bench.py [--sizes 64 256 1024 4096] [--repeats 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import kernels

OPS = ("systematic", "stratified", "multinomial", "residual", "ess", "logsumexp")


def stats_us(samples_ns: list[int]) -> dict[str, float]:
    """Median and 99th percentile of the samples, in microseconds."""
    a = np.asarray(samples_ns, dtype=float) / 1e3
    return {"median_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99))}


def time_call(call: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> dict:
    """Latency of ``call`` (then ``sync``) over ``repeats`` runs after a few warm-up runs."""
    for _ in range(5):
        call()
    sync()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        call()
        sync()
        samples.append(time.perf_counter_ns() - t)
    return stats_us(samples)


def op_call(op: str, weights: Any, backend: str, rng: np.random.Generator) -> Callable[[], Any]:
    """The kernels call that ``op`` names, on ``weights`` with ``backend``."""
    if op == "ess":
        return lambda: kernels.ess(weights, backend=backend)
    if op == "logsumexp":
        return lambda: kernels.logsumexp(weights, backend=backend)
    return lambda: kernels.resample(weights, op, seed=rng, backend=backend)


def cuda_state() -> tuple[Any, str]:
    """(torch, '') when triton can be timed on a CUDA device, else (None, the reason)."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, "triton timing needs a CUDA device (none here)"
    try:
        from kernels import triton_gpu
    except ImportError as err:
        return None, f"triton is not importable ({err})"
    if triton_gpu.INTERPRETED:
        return None, "TRITON_INTERPRET=1 is set: unset it to time triton"
    return torch, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per cell")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    torch, no_triton = cuda_state()
    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes:
        lw = rng.normal(scale=2.0, size=size)
        lw[rng.random(size) < 0.2] = -np.inf
        lw[0] = 0.0
        inputs = {"numpy": (lw, "numpy"), "numba": (lw, "numba")}
        sync: dict[str, Callable[[], None]] = {"numpy": lambda: None, "numba": lambda: None}
        if torch is not None:
            on_gpu = torch.tensor(lw, device="cuda")
            inputs["triton"] = (on_gpu, "triton")
            inputs["numba (cuda tensor)"] = (on_gpu, "numba")
            sync["triton"] = sync["numba (cuda tensor)"] = torch.cuda.synchronize
        for op in OPS:
            row: dict[str, Any] = {"op": op, "n": size}
            for label, (weights, backend) in inputs.items():
                call = op_call(op, weights, backend, np.random.default_rng(1))
                row[label] = time_call(call, args.repeats, sync[label])
            rows.append(row)
            if not args.json:
                print(f"N={size:5d} {op:11s} done", file=sys.stderr)

    labels = [k for k in rows[0] if k not in ("op", "n")] if rows else []
    versions = {"numpy": np.__version__}
    for name in ("numba", "torch", "triton"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
        "repeats": args.repeats,
        "cuda_device": torch.cuda.get_device_name() if torch is not None else None,
        "triton": "timed" if torch is not None else no_triton,
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return 0
    print(f"kernels latency, microseconds per call (median / p99), {args.repeats} calls per cell; "
          f"resample draws n = N")
    print(f"cpu {meta['cpu']}, python {meta['python']}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    if torch is None:
        print(f"triton: {no_triton}")
    else:
        print(f"triton on {meta['cuda_device']}")
    print("| op | N | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for r in rows:
        cells = [f"{r[k]['median_us']:.1f} / {r[k]['p99_us']:.1f}" for k in labels]
        print(f"| {r['op']} | {r['n']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
