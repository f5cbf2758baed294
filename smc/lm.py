"""Language-model backends behind one batched interface, and ``FunctionLM``.

A backend turns a prompt into a *batch state* of N rows (one per live particle)
and then, once per step, advances every row by one token in a single call:

    state = lm.start(prompt_ids, n)      # prompt encoded once, shared by all rows
    lp    = state.logprobs               # (rows, V) log p(v | prefix of row)
    state.select(rows)                   # keep / duplicate / reorder rows (resampling, deaths)
    state.advance(tokens)                # one token per row, one batched forward

``select`` never recomputes anything: a transformer backend reorders its KV cache.

A backend may also offer ``start_device``: a ``DeviceBatchState`` whose log-probabilities stay
a torch tensor on the model's device and whose ``select``/``advance`` take device index
tensors, for the device-resident step (``smc.device_step``).  ``FunctionLM`` offers one on the
CPU (its function still runs on the host), so the device step is tested without a GPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class BatchState(ABC):
    """Rows of partial sequences that advance together."""

    logprobs: np.ndarray  # (rows, V) float64 next-token log-probabilities

    @property
    def rows(self) -> int:
        return int(self.logprobs.shape[0])

    @abstractmethod
    def select(self, rows: np.ndarray) -> None:
        """Replace the batch by ``rows`` (int indices into the current rows, repeats allowed)."""

    @abstractmethod
    def advance(self, tokens: np.ndarray) -> None:
        """Append ``tokens[r]`` to row ``r`` and compute the next log-probabilities."""

    # Optional (``supports_chunks``): several tokens per row in one forward, for
    # speculative drafts.  ``advance_chunks(chunks)`` feeds row r the tokens chunks[r];
    # ``chunk_logprobs(r, j)`` is log p(· | row r + chunks[r][: j + 1]); ``accept(m)``
    # keeps the first m[r] ≥ 1 tokens of each chunk and sets ``logprobs`` after them.
    supports_chunks = False


class DeviceBatchState(ABC):
    """Rows whose next-token log-probabilities stay a torch tensor on ``device``."""

    logprobs: Any  # torch.Tensor (rows, V) floating, on ``device``
    device: Any  # torch.device

    @property
    def rows(self) -> int:
        return int(self.logprobs.shape[0])

    @abstractmethod
    def select(self, rows: Any) -> None:
        """Replace the batch by ``rows`` (an int64 tensor on ``device``, repeats allowed)."""

    @abstractmethod
    def advance(self, tokens: Any) -> None:
        """Append ``tokens[r]`` (an int64 tensor on ``device``) to row r and run the model."""


class LanguageModel(ABC):
    """What the sampler needs from a causal language model."""

    vocab_bytes: list[bytes | None]  # bytes of each token id; None = special (never text)
    eos: int  # the end-of-sequence id the outputs end with
    eos_ids: frozenset[int]  # every id that ends a sequence
    max_context: int | None = None  # longest sequence the model accepts, None = unbounded

    @property
    def vocab_size(self) -> int:
        return len(self.vocab_bytes)

    @abstractmethod
    def encode(self, prompt: str) -> list[int]:
        """Token ids of the prompt (with whatever the model expects in front)."""

    @abstractmethod
    def start(self, prompt_ids: Sequence[int], n: int) -> BatchState:
        """Encode the prompt once and return a state of ``n`` identical rows."""

    def start_device(self, prompt_ids: Sequence[int], n: int) -> DeviceBatchState:
        """Like ``start``, but the state keeps its log-probabilities on the model's device."""
        raise NotImplementedError(f"{type(self).__name__} has no device-resident batch state")

    @property
    def supports_device_step(self) -> bool:
        """Whether ``start_device`` is implemented (the device step can run on this model)."""
        return type(self).start_device is not LanguageModel.start_device

    @property
    def on_cuda(self) -> bool:
        """Whether the model computes on a CUDA device (``step="auto"`` then picks the device)."""
        return getattr(getattr(self, "device", None), "type", None) == "cuda"

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of generated ids (special ids dropped, broken UTF-8 replaced)."""
        data = b"".join(self.vocab_bytes[t] or b"" for t in token_ids if t not in self.eos_ids)
        return data.decode("utf-8", errors="replace")


class _FunctionState(BatchState):
    def __init__(self, lm: FunctionLM, prefixes: list[tuple[int, ...]]) -> None:
        self.lm = lm
        self.prefixes = prefixes
        self.logprobs = np.stack([lm.logprobs_of(p) for p in prefixes])

    def select(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.prefixes = [self.prefixes[r] for r in rows]
        self.logprobs = self.logprobs[rows]
        if getattr(self, "_chunks", None) is not None:
            self._chunks = [self._chunks[r] for r in rows]

    def advance(self, tokens: np.ndarray) -> None:
        self.prefixes = [p + (int(t),) for p, t in zip(self.prefixes, tokens, strict=True)]
        if self.prefixes:
            self.logprobs = np.stack([self.lm.logprobs_of(p) for p in self.prefixes])
        else:
            self.logprobs = np.empty((0, self.lm.vocab_size))

    # chunks (speculative drafts): see ``SharedPrefixState.advance_chunks``
    supports_chunks = True

    def advance_chunks(self, chunks) -> None:
        if len(chunks) != len(self.prefixes) or any(len(c) < 1 for c in chunks):
            raise ValueError("advance_chunks needs one chunk of at least one token per row")
        self._chunks = [tuple(int(t) for t in c) for c in chunks]

    def chunk_logprobs(self, row: int, j: int) -> np.ndarray:
        chunk = self._chunks[row]
        if not 0 <= j < len(chunk):
            raise IndexError(f"no chunk position {j} for row {row}")
        return self.lm.logprobs_of(self.prefixes[row] + chunk[: j + 1])

    def accept(self, lengths) -> None:
        chunks = getattr(self, "_chunks", None)
        if chunks is None or len(lengths) != len(chunks) or any(
                not 1 <= m <= len(c) for m, c in zip(lengths, chunks, strict=True)):
            raise ValueError("accept needs one length in [1, chunk length] per row, after "
                             "advance_chunks")
        self.prefixes = [p + c[: int(m)] for p, c, m in zip(self.prefixes, chunks, lengths,
                                                             strict=True)]
        self.logprobs = (np.stack([self.lm.logprobs_of(p) for p in self.prefixes])
                         if self.prefixes else np.empty((0, self.lm.vocab_size)))
        self._chunks = None


class _FunctionDeviceState(DeviceBatchState):
    """``_FunctionState`` seen through CPU torch tensors (the function itself runs on the host)."""

    def __init__(self, lm: FunctionLM, prefixes: list[tuple[int, ...]]) -> None:
        import torch

        self.device = torch.device("cpu")
        self.host = _FunctionState(lm, prefixes)
        self.logprobs = torch.from_numpy(self.host.logprobs)

    def select(self, rows: Any) -> None:
        import torch

        self.host.select(rows.numpy())
        self.logprobs = torch.from_numpy(self.host.logprobs)

    def advance(self, tokens: Any) -> None:
        import torch

        self.host.advance(tokens.numpy())
        self.logprobs = torch.from_numpy(self.host.logprobs)


class FunctionLM(LanguageModel):
    """A language model given by a function: ``next_logprobs(token_ids) -> log p(· | ids)``.

    ``vocab`` lists each token's text (str or bytes); ``eos`` indexes the end
    token.  There is no tokenizer: the prompt must be ``""`` and ``token_ids``
    are the ids generated so far.  Results are memoised per prefix.
    """

    def __init__(
        self,
        vocab: Sequence[str | bytes],
        eos: int,
        next_logprobs: Callable[[list[int]], np.ndarray],
        max_context: int | None = None,
    ) -> None:
        if not 0 <= eos < len(vocab):
            raise ValueError(f"eos={eos} is not an index into a vocabulary of {len(vocab)}")
        self.vocab = list(vocab)
        self.vocab_bytes = [
            None if i == eos else (v.encode("utf-8") if isinstance(v, str) else bytes(v))
            for i, v in enumerate(vocab)
        ]
        self.eos = eos
        self.eos_ids = frozenset({eos})
        self.max_context = max_context
        self._fn = next_logprobs
        self._memo: dict[tuple[int, ...], np.ndarray] = {}

    def encode(self, prompt: str) -> list[int]:
        if prompt:
            raise ValueError("a FunctionLM has no tokenizer: pass prompt=''")
        return []

    def logprobs_of(self, prefix: tuple[int, ...]) -> np.ndarray:
        hit = self._memo.get(prefix)
        if hit is None:
            hit = np.asarray(self._fn(list(prefix)), dtype=np.float64)
            if hit.shape != (self.vocab_size,):
                raise ValueError(
                    f"next_logprobs returned shape {hit.shape}, expected ({self.vocab_size},)"
                )
            if np.isnan(hit).any():
                raise ValueError(f"next_logprobs returned NaN after prefix {list(prefix)}")
            if len(self._memo) < 1_000_000:
                self._memo[prefix] = hit
        return hit

    def start(self, prompt_ids: Sequence[int], n: int) -> BatchState:
        return _FunctionState(self, [tuple(prompt_ids)] * n)

    def start_device(self, prompt_ids: Sequence[int], n: int) -> DeviceBatchState:
        return _FunctionDeviceState(self, [tuple(prompt_ids)] * n)

    def __repr__(self) -> str:
        return f"FunctionLM(vocab={len(self.vocab)}, eos={self.eos})"
