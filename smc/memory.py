"""How many particles fit: KV-cache bytes per particle per token and a refusal before allocating.

A run of N particles over a prompt of P tokens and ``max_tokens`` T holds, on the model's
device, a KV cache of N·(P+T)·b bytes, b = 2 (keys and values) · layers · kv_heads ·
head_dim · bytes per element (with a shared prefix, ``shared_prefix``: P·b₃₂ + N·4T·b₃₂,
float32 elements, the generated part's buffers doubling and copied on resampling),
plus per row the step's logits and log-probabilities (2·V
floats) and the host copy of the log-probabilities (V float64), or for the device step (no host
copy) its sampling scratch.  ``generate`` refuses a particle count whose estimate exceeds the
memory the device reports free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class InsufficientMemoryError(ValueError):
    """The requested particle count would not fit; the message gives the largest that would."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs on the device and on the host, and what each has free."""

    kv_bytes_per_token: int    # per particle
    device_bytes: int          # shared_bytes + N per-row bytes (on the CPU: 0, see host)
    host_bytes: int
    device_free: int | None
    host_free: int | None
    shared_bytes: int = 0      # what all rows share (a shared prompt cache), in the totals

    def fits(self) -> bool:
        on_device = self.device_free is None or self.device_bytes <= self.device_free
        on_host = self.host_free is None or self.host_bytes <= self.host_free
        return on_device and on_host


def kv_bytes_per_token(config, element_bytes: int) -> int:
    """2 · layers · kv_heads · head_dim · element_bytes, read off a transformers config."""
    cfg = getattr(config, "text_config", None) or config
    layers = int(cfg.num_hidden_layers)
    heads = int(getattr(cfg, "num_attention_heads", 1))
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = getattr(cfg, "head_dim", None) or int(cfg.hidden_size) // heads
    return 2 * layers * kv_heads * int(head_dim) * element_bytes


def host_free_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def device_free_bytes(device) -> int | None:
    """Free memory of a CUDA device as the driver reports it; None on the CPU (the host
    figure applies there)."""
    if str(device).startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


# bytes per vocabulary entry per row of the device step's sampling scratch (smc.device_step):
# masked scores (float32), exp (float32), running sums (float64), rank (int32), positive (bool)
DEVICE_STEP_SCRATCH = 4 + 4 + 8 + 4 + 1


def estimate(lm, n: int, prompt_len: int, max_tokens: int,
             device_step: bool = False) -> MemoryEstimate | None:
    """The memory a run of ``n`` particles needs on ``lm`` (None for models without a
    KV cache, e.g. ``FunctionLM``).  ``device_step``: the device-resident step, which keeps
    no host copy of the log-probabilities but needs sampling scratch on the device."""
    model = getattr(lm, "model", None)
    if model is None or not hasattr(model, "config"):
        return None
    param = next(model.parameters())
    per_token = kv_bytes_per_token(model.config, param.element_size())
    vocab = lm.vocab_size
    shared = 0
    if getattr(lm, "shares_prefix", False) and not device_step:
        per_token = kv_bytes_per_token(model.config, 4)      # float32 buffers
        shared = per_token * prompt_len                      # the prompt's cache, once
        # buffers double from 16 positions (≤ 2T) and resampling copies them: ≤ 4T at peak
        per_row_device = per_token * 4 * max(max_tokens, 16) + 2 * vocab * 4
    else:
        per_row_device = per_token * (prompt_len + max_tokens) + 2 * vocab * 4
    per_row_device += DEVICE_STEP_SCRATCH * vocab if device_step else 0
    host_logprobs = 0 if device_step else n * vocab * 8
    on_cuda = str(lm.device).startswith("cuda")
    device_bytes = shared + n * per_row_device
    host_bytes = host_logprobs + (0 if on_cuda else device_bytes)
    return MemoryEstimate(per_token, device_bytes if on_cuda else 0, host_bytes,
                          device_free_bytes(lm.device), host_free_bytes(), shared)


def check_fits(lm, n: int, prompt_len: int, max_tokens: int,
               device_step: bool = False) -> MemoryEstimate | None:
    """Raise ``InsufficientMemoryError`` (naming the largest count that fits) when ``n``
    particles would not fit; ``SMC_DECODE_NO_MEMORY_CHECK=1`` switches the check off."""
    if os.environ.get("SMC_DECODE_NO_MEMORY_CHECK") == "1":
        return None
    est = estimate(lm, n, prompt_len, max_tokens, device_step)
    if est is None or est.fits():
        return est
    on_cuda = str(lm.device).startswith("cuda")
    shared_device = est.shared_bytes if on_cuda else 0
    shared_host = 0 if on_cuda else est.shared_bytes
    per_device = (est.device_bytes - shared_device) // n
    per_host = (est.host_bytes - shared_host) // n
    limits = []
    if est.device_free is not None and per_device:
        limits.append((est.device_free - shared_device) // per_device)
    if est.host_free is not None and per_host:
        limits.append((est.host_free - shared_host) // per_host)
    largest = max(0, min(limits)) if limits else 0
    where = "device" if (est.device_free is not None
                         and est.device_bytes > est.device_free) else "host"
    need = est.device_bytes if where == "device" else est.host_bytes
    free = est.device_free if where == "device" else est.host_free
    raise InsufficientMemoryError(
        f"{n} particles need about {need / 2**30:.2f} GiB on the {where} "
        f"({est.kv_bytes_per_token} bytes of KV cache per particle per token, "
        f"{prompt_len}+{max_tokens} tokens) but {free / 2**30:.2f} GiB is free; "
        f"the largest particle count that fits is {largest}"
    )
