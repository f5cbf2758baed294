"""A linear layer y = x·Wᵀ + b whose weight is prepacked for oneDNN's CPU matmul.

A decoding step multiplies a few rows (the particles) by every weight matrix, so it is
bound by how fast the matmul streams W.  ``F.linear`` on the CPU goes to MKL's GEMM,
which on some CPUs handles this shape poorly (on a 2-core AMD EPYC with AVX2, float32,
7 rows: 2–4× slower than oneDNN with W reordered once into its blocked layout; compare
``SMC_PACKED_LINEAR=0 python benchmarks/kv_cache.py`` with the default).  ``PackedLinear``
packs W once and calls oneDNN's matmul; where torch cannot pack (not a CPU tensor, no
oneDNN, a dtype this CPU's oneDNN lacks, e.g. bfloat16 without AVX-512) or the packed
product disagrees with ``F.linear`` on a probe, it is ``F.linear`` itself.  The product is
the same matrix product; only the order of the float additions differs.

``SMC_PACKED_LINEAR=0`` in the environment turns packing off (for A/B timing).
"""

from __future__ import annotations

import os


def enabled() -> bool:
    """Whether packing is allowed (``SMC_PACKED_LINEAR`` unset, or not "0")."""
    return os.environ.get("SMC_PACKED_LINEAR", "1") != "0"


class PackedLinear:
    """x ↦ x·Wᵀ + b for x of shape (..., in), with W (out, in) packed when possible."""

    def __init__(self, weight, bias=None, rows_hint: int = 16) -> None:
        self.weight = weight
        self.bias = None if bias is None else bias.detach()
        self.packed = _pack(weight, self.bias, rows_hint) if enabled() else None

    @property
    def is_packed(self) -> bool:
        return self.packed is not None

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        if self.packed is None:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        if not flat.is_contiguous():
            flat = flat.contiguous()
        y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], y.shape[-1])


def _pack(weight, bias, rows_hint: int):
    """W reordered for oneDNN, or None where torch cannot (checked on a random probe)."""
    import torch
    import torch.nn.functional as F

    if weight.device.type != "cpu" or weight.dim() != 2:
        return None
    if not torch.backends.mkldnn.is_available() or weight.dtype not in (torch.float32,
                                                                        torch.bfloat16):
        return None
    try:
        with torch.inference_mode():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows_hint)
            probe = torch.randn(3, weight.shape[1], generator=torch.Generator().manual_seed(0))
            probe = probe.to(weight.dtype)
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
            want = F.linear(probe, weight, bias)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    tol = 1e-3 if weight.dtype == torch.float32 else 5e-2
    scale = float(want.abs().max()) or 1.0
    if got.shape != want.shape or float((got - want).abs().max()) > tol * scale:
        return None
    return packed
