"""Hugging Face causal LMs as a batched backend with a shared, reorderable KV cache.

The prompt runs through the model once (batch 1).  For a plain Llama decoder (the
embedded SmolLM2) ``start`` returns ``shared_prefix.SharedPrefixState``: the prompt's KV
cache is kept once and each step attends to it and to per-row buffers of the generated
tokens (``SMC_DECODE_SHARED_PREFIX=0`` turns it off).  Otherwise (``_HFState``) the
prompt's cache is repeated to N rows and each step is the model's own forward with a
``transformers`` cache.  Each step feeds one new token per live row in a single
forward; resampling and deaths call ``select``, which gathers cache rows by ancestor
index: nothing is recomputed.

``start`` returns the host state (float64 NumPy log-probabilities, one N×V copy to the host per
step); ``start_device`` returns ``_HFDeviceState``, whose log-probabilities stay a float32 tensor
on the model's device and whose ``select``/``advance`` take device index tensors (no copy back).
Each model call is a ``smc.forward`` range in a ``torch.profiler`` trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smc.lm import BatchState, DeviceBatchState, LanguageModel
from smc.token_bytes import vocab_bytes


def run_prompt(lm: HFLanguageModel, ids: Sequence[int], past=None):
    """The model's output on ``ids`` (batch 1) after the cache ``past`` (None: from scratch),
    computing only the last position's logits where the model allows it."""
    import torch

    run = torch.tensor([list(ids)], dtype=torch.long, device=lm.device)
    kwargs = {"use_cache": True} if past is None else {"use_cache": True, "past_key_values": past}
    with torch.inference_mode(), torch.profiler.record_function("smc.forward"):
        try:  # only the last position's logits: P×V floats would dwarf the cache
            return lm.model(input_ids=run, logits_to_keep=1, **kwargs)
        except TypeError:
            return lm.model(input_ids=run, **kwargs)


def _prompt_forward(lm: HFLanguageModel, prompt_ids: Sequence[int], n: int):
    """Run the prompt once (batch 1), repeat its KV cache to ``n`` rows; (cache, last logits)."""
    out = run_prompt(lm, prompt_ids)
    cache = out.past_key_values
    if n > 1:
        cache.batch_repeat_interleave(n)
    return cache, out.logits[:, -1, :]


class _HFState(BatchState):
    def __init__(self, lm: HFLanguageModel, prompt_ids: Sequence[int], n: int) -> None:
        self.lm = lm
        self.length = len(prompt_ids)
        self.cache, logits = _prompt_forward(lm, prompt_ids, n)
        row = self._to_logprobs(logits)
        self.logprobs = np.repeat(row, n, axis=0)

    def _to_logprobs(self, logits) -> np.ndarray:
        import torch

        lp = torch.log_softmax(logits.float(), dim=-1)
        return lp.cpu().numpy().astype(np.float64)[:, : self.lm.vocab_size]

    def select(self, rows: np.ndarray) -> None:
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        self.logprobs = self.logprobs[rows]
        if len(rows):
            self.cache.reorder_cache(torch.as_tensor(rows, device=self.lm.device))

    def advance(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens, dtype=np.int64)
        if len(tokens) == 0:
            self.logprobs = np.empty((0, self.lm.vocab_size))
            return
        self.lm.check_length(self.length + 1)
        logits = self._forward(tokens)
        self.length += 1
        self.logprobs = self._to_logprobs(logits)

    def _forward(self, tokens: np.ndarray):
        """Logits (rows, V) after one new token per row; extends the cache."""
        import torch

        ids = torch.as_tensor(tokens, device=self.lm.device).view(-1, 1)
        with torch.inference_mode(), torch.profiler.record_function("smc.forward"):
            out = self.lm.model(input_ids=ids, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[:, -1, :]


class _HFDeviceState(DeviceBatchState):
    """Log-probabilities log_softmax(logits) as a float32 (rows, V) tensor on the model's device."""

    def __init__(self, lm: HFLanguageModel, prompt_ids: Sequence[int], n: int) -> None:
        self.lm = lm
        self.device = lm.device
        self.length = len(prompt_ids)
        self.cache, logits = _prompt_forward(lm, prompt_ids, n)
        self.logprobs = self._to_logprobs(logits).expand(n, -1).contiguous()

    def _to_logprobs(self, logits):
        import torch

        return torch.log_softmax(logits.float(), dim=-1)[:, : self.lm.vocab_size]

    def select(self, rows) -> None:
        self.logprobs = self.logprobs.index_select(0, rows)
        if rows.numel():
            self.cache.reorder_cache(rows)

    def advance(self, tokens) -> None:
        import torch

        if tokens.numel() == 0:
            self.logprobs = self.logprobs[:0]
            return
        self.lm.check_length(self.length + 1)
        with torch.inference_mode(), torch.profiler.record_function("smc.forward"):
            out = self.lm.model(input_ids=tokens.view(-1, 1), past_key_values=self.cache,
                                use_cache=True)
        self.cache = out.past_key_values
        self.length += 1
        self.logprobs = self._to_logprobs(out.logits[:, -1, :])


class HFLanguageModel(LanguageModel):
    """A ``transformers`` causal LM and its tokenizer."""

    def __init__(self, model, tokenizer, name: str = "") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.device = next(model.parameters()).device
        size = int(getattr(model.config, "vocab_size", len(tokenizer)))
        self.vocab_bytes = vocab_bytes(tokenizer, max(size, len(tokenizer)))[:size]
        eos = tokenizer.eos_token_id
        gen = getattr(model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None) if gen is not None else None
        extra = [extra] if isinstance(extra, int) else list(extra or [])
        if eos is None:
            if not extra:
                raise ValueError(f"{self.name}: the tokenizer defines no end-of-sequence token")
            eos = extra[0]
        self.eos = int(eos)
        self.eos_ids = frozenset([self.eos, *map(int, extra)])
        self.max_context = getattr(model.config, "max_position_embeddings", None)

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache each particle adds per token (keys and values, every layer)."""
        from smc.memory import kv_bytes_per_token

        return kv_bytes_per_token(self.model.config, next(self.model.parameters()).element_size())

    def check_length(self, length: int) -> None:
        if self.max_context is not None and length > self.max_context:
            raise ValueError(
                f"sequence of {length} tokens exceeds {self.name}'s context of "
                f"{self.max_context} tokens; shorten the prompt or lower max_tokens"
            )

    def encode(self, prompt: str) -> list[int]:
        ids = list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not ids:  # the model needs one token to condition on
            bos = self.tokenizer.bos_token_id
            ids = [bos if bos is not None else self.eos]
        return ids

    def chat(self, user: str, system: str | None = None) -> str:
        """The prompt string for one user turn, in the model's chat template."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return (system + "\n\n" if system else "") + user + "\n"

    @property
    def shares_prefix(self) -> bool:
        """Whether ``start`` keeps the prompt's KV cache once (``shared_prefix``)."""
        import os

        from smc.shared_prefix import supports

        return os.environ.get("SMC_DECODE_SHARED_PREFIX", "1") != "0" and supports(self.model)

    def start(self, prompt_ids: Sequence[int], n: int) -> BatchState:
        self.check_length(len(prompt_ids))
        if self.shares_prefix:
            from smc.shared_prefix import SharedPrefixState

            return SharedPrefixState(self, prompt_ids, n)
        return _HFState(self, prompt_ids, n)

    def start_device(self, prompt_ids: Sequence[int], n: int) -> DeviceBatchState:
        self.check_length(len(prompt_ids))
        return _HFDeviceState(self, prompt_ids, n)

    def __repr__(self) -> str:
        return f"HFLanguageModel({self.name!r}, vocab={self.vocab_size}, device={self.device})"
