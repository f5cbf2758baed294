"""Triton kernel for token masking: logits[r, t] = -inf wherever token t is forbidden in row r.

The bitmask packs one bit per token into int32 words, bit j of word k = token 32k + j allowed
(the xgrammar / llguidance layout), (rows, ⌈V/32⌉) words for (rows, V) logits.  One program
handles MASK_BLOCK columns of one row: it loads the word of each column (32 lanes share a word),
tests the bit and stores -inf only where it is 0, so allowed logits are never written.  Logits
keep their dtype (float16, bfloat16, float32, float64) and strides; the write is in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from kernels import triton_gpu
from kernels._validate import TritonUnavailableError

MASK_BLOCK = 1024  # vocabulary columns per program, read at each call


@triton.jit
def _bitmask_kernel(
    logits_ptr, mask_ptr, vocab, logits_row, logits_col, mask_row, BLOCK: tl.constexpr
):
    """logits[r, t] = -inf wherever bit t % 32 of mask[r, t // 32] is 0 (t < vocab)."""
    row = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = t < vocab
    words = tl.load(mask_ptr + row * mask_row + t // 32, mask=inside, other=-1)
    banned = ((words >> (t % 32)) & 1) == 0
    ninf = tl.full([BLOCK], float("-inf"), logits_ptr.dtype.element_ty)
    tl.store(logits_ptr + row * logits_row + t.to(tl.int64) * logits_col, ninf, inside & banned)


def apply_token_bitmask_(logits: Any, bitmask: Any) -> Any:
    """In place, logits[r, t] = -inf where bit t % 32 of bitmask[r, t // 32] is 0; returns logits.

    ``logits`` is a floating (rows, V) or (V,) tensor (a NumPy array under the interpreter,
    written through a shared view); shapes are checked by the caller.
    """
    if isinstance(logits, np.ndarray):
        if not triton_gpu.INTERPRETED:
            raise TritonUnavailableError(triton_gpu.HOST_MESSAGE.format(what="a NumPy array"))
        target = torch.from_numpy(logits)
    elif isinstance(logits, torch.Tensor):
        target = logits
    else:
        raise TypeError(f"logits must be a tensor or an array, got {type(logits).__name__}")
    rows2d = triton_gpu.on_device(target.detach(), "a tensor")
    if rows2d.ndim == 1:
        rows2d = rows2d.unsqueeze(0)
    if isinstance(bitmask, torch.Tensor):
        words = bitmask.view(torch.int32)  # uint32: the same bits
    else:
        words = torch.from_numpy(np.ascontiguousarray(bitmask).view(np.int32))
    words = words.to(rows2d.device).reshape(rows2d.shape[0], -1).contiguous()
    rows, vocab = rows2d.shape
    if rows and vocab:
        grid = (rows, triton.cdiv(vocab, MASK_BLOCK))
        with triton_gpu.launching_on(rows2d.device):
            _bitmask_kernel[grid](
                rows2d, words, vocab, rows2d.stride(0), rows2d.stride(1), words.stride(0),
                BLOCK=MASK_BLOCK,
            )
    return logits
