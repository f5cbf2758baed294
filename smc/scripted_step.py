"""The shared-prefix step's decoder layers as one TorchScript function.

``SharedPrefixState._step`` (``smc.shared_prefix``) runs ~25 small tensor operations per
layer for a few rows: on a CPU their Python dispatch costs about as much as their
arithmetic (≈12 ms of a ≈70 ms step for SmolLM2's 30 layers at 10 rows).  ``layers`` is
the same loop, operation for operation (the same kernels, in the same order, on the same
packed weights: the result equals the Python loop's), compiled once by TorchScript so
that it runs without the interpreter.  Used where every linear map of the step is packed
for oneDNN (``smc.packed_linear``) and the MLP's activation is SiLU; otherwise, or with
``SMC_DECODE_SCRIPTED_STEP=0``, the Python loop runs (the switch is read when a model's
fused weights are built: after ``smc.shared_prefix.forget(model)`` for a model in use).

Per layer, with h the rows' hidden states (n, H), rms(x) = w·x/√(mean(x²)+ε):

    q, k, v = rope(W_qkv·rms(h));  a = softmax([q·K_pᵀ, q·K_gᵀ]·s)·[V_p; V_g]
    h ← h + W_o·a;  h ← h + W_down·(silu(W_gate·rms(h)) ⊙ W_up·rms(h))
"""

import os
import warnings
from typing import Any, List, Optional  # noqa: UP035 - TorchScript reads these annotations

import torch
from torch import Tensor

_COMPILED: dict[str, Any] = {}


def enabled() -> bool:
    """Whether the scripted step may run (``SMC_DECODE_SCRIPTED_STEP`` unset, or not "0")."""
    return os.environ.get("SMC_DECODE_SCRIPTED_STEP", "1") != "0"


def _layers(h: Tensor, cos: Tensor, sin: Tensor, t: int, packed: List[Tensor],  # noqa: UP006
            biases: List[Optional[Tensor]], norm_w: List[Tensor],  # noqa: UP006, UP045
            eps: List[float], k_p: List[Tensor], v_p: List[Tensor],  # noqa: UP006
            k_g: List[Tensor], v_g: List[Tensor],  # noqa: UP006
            hq: int, hkv: int, d: int, inter: int, scale: float) -> Tensor:
    n = h.shape[0]
    g = hq // hkv
    half = d // 2
    plen = k_p[0].shape[1]
    width = h.shape[-1]
    for i in range(len(k_p)):
        x = norm_w[2 * i] * torch.rms_norm(h.float(), [width], None,
                                           eps[2 * i]).to(h.dtype)
        qkv = torch.ops.mkldnn._linear_pointwise(x, packed[4 * i], biases[4 * i],
                                                 "none", [], "")
        qk = qkv[:, : (hq + hkv) * d].view(n, hq + hkv, d).float()
        qk = qk * cos + torch.roll(qk, half, -1) * sin
        k_g[i][:, :, t].copy_(qk[:, hq:])
        v_g[i][:, :, t].copy_(qkv[:, (hq + hkv) * d:].view(n, hkv, d))
        qh = qk[:, :hq].reshape(n, hkv, g, d)
        qp = qh.permute(1, 0, 2, 3).reshape(hkv, n * g, d)
        s_p = torch.bmm(qp, k_p[i].transpose(1, 2))
        s_p = s_p.view(hkv, n, g, plen).permute(1, 0, 2, 3)
        s_g = torch.matmul(qh, k_g[i][:, :, : t + 1].transpose(2, 3))
        p = torch.softmax(torch.cat([s_p, s_g], dim=-1) * scale, dim=-1)
        p_p = p[:, :, :, :plen].permute(1, 0, 2, 3).reshape(hkv, n * g, plen)
        o = torch.bmm(p_p, v_p[i]).view(hkv, n, g, d).permute(1, 0, 2, 3)
        o = o + torch.matmul(p[:, :, :, plen:], v_g[i][:, :, : t + 1])
        o = o.reshape(n, hq * d).to(h.dtype)
        h = h + torch.ops.mkldnn._linear_pointwise(o, packed[4 * i + 2], biases[4 * i + 2],
                                                   "none", [], "")
        x = norm_w[2 * i + 1] * torch.rms_norm(h.float(), [width], None,
                                               eps[2 * i + 1]).to(h.dtype)
        gu = torch.ops.mkldnn._linear_pointwise(x, packed[4 * i + 1], biases[4 * i + 1],
                                                "none", [], "")
        gu = torch.nn.functional.silu(gu[:, :inter]) * gu[:, inter:]
        h = h + torch.ops.mkldnn._linear_pointwise(gu, packed[4 * i + 3], biases[4 * i + 3],
                                                   "none", [], "")
    return h


def compiled():
    """The scripted ``layers`` function (compiled once per process), or None where
    TorchScript cannot compile it (a warning says why; the Python loop runs instead)."""
    if "layers" not in _COMPILED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _COMPILED["layers"] = torch.jit.script(_layers)
        except Exception as exc:  # noqa: BLE001 - any TorchScript failure means "no script"
            warnings.warn(f"the scripted decoding step is unavailable ({exc.__class__.__name__}:"
                          f" {str(exc).splitlines()[0] if str(exc) else ''}); using the "
                          f"Python loop", RuntimeWarning, stacklevel=2)
            _COMPILED["layers"] = None
    return _COMPILED["layers"]


class ScriptedLayers:
    """The arguments of ``layers`` that do not change from step to step, for one model's
    fused weights (``shared_prefix._Fused``); ``None`` from ``build`` where it cannot run."""

    def __init__(self, fused) -> None:
        self.packed = [lin.packed for parts in fused.layers for lin in parts]
        self.biases = [lin.bias for parts in fused.layers for lin in parts]
        self.norm_w = [w for pair in fused.norms for (w, _eps) in pair]
        self.eps = [float(e) for pair in fused.norms for (_w, e) in pair]
        self.fn = compiled()

    @staticmethod
    def build(fused, model) -> "ScriptedLayers | None":
        if not enabled():
            return None
        if not all(lin.is_packed for parts in fused.layers for lin in parts):
            return None
        if getattr(model.config, "hidden_act", None) not in ("silu", "swish"):
            return None
        got = ScriptedLayers(fused)
        return got if got.fn is not None else None

    def __call__(self, h, cos, sin, t: int, prefix, buffers, fused):
        return self.fn(h, cos, sin, t, self.packed, self.biases, self.norm_w, self.eps,
                       [k for k, _v in prefix], [v for _k, v in prefix],
                       [k for k, _v in buffers], [v for _k, v in buffers],
                       fused.heads, fused.kv_heads, fused.head_dim, fused.intermediate,
                       fused.scale)
