"""Rows with the same history share one row of the model's batch.

After resampling, several particles are copies of one ancestor, and copies that then draw
the same token stay copies: their next-token laws are the same function of the same token
sequence.  ``DedupState`` wraps a model's ``BatchState`` and keeps, for each particle row r,
the inner row ``map[r]`` holding its history; a step runs the model once per distinct
(inner row, new tokens) pair, so a forward costs what the distinct histories need:

    logprobs[r] = inner.logprobs[map[r]]

Exact by construction (the same inputs give the same law); only the batch the model sees
is smaller.  ``select`` (resampling) only re-indexes ``map``; the inner state is gathered at
the next forward, to the distinct rows that are still referenced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smc.lm import BatchState


def start(lm, prompt_ids: Sequence[int], n: int) -> DedupState:
    """``n`` rows of ``prompt_ids`` (one row of ``lm``'s own state, shared by all)."""
    return DedupState(lm.start(prompt_ids, 1), n)


class DedupState(BatchState):
    """``n`` particle rows over an inner ``BatchState`` that holds their distinct histories."""

    def __init__(self, inner: BatchState, n: int, rows: np.ndarray | None = None) -> None:
        self.inner = inner
        self.map = np.zeros(n, np.int64) if rows is None else np.asarray(rows, np.int64)
        if len(self.map) and (self.map.min() < 0 or self.map.max() >= inner.rows):
            raise ValueError("rows must index the inner state's rows")
        self._logprobs: np.ndarray | None = None
        self.forwarded_rows: list[int] = []       # inner rows of each forward (diagnostic)

    # -- the batch ----------------------------------------------------------------------
    @property
    def logprobs(self) -> np.ndarray:  # type: ignore[override]
        if self._logprobs is None:
            self._logprobs = self.inner.logprobs[self.map]
        return self._logprobs

    @property
    def rows(self) -> int:
        return len(self.map)

    @property
    def distinct(self) -> int:
        """Distinct histories among the rows."""
        return len(np.unique(self.map))

    def select(self, rows: np.ndarray) -> None:
        self.map = self.map[np.asarray(rows, np.int64)]
        self._logprobs = None

    def advance(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens, np.int64)
        if len(tokens) != len(self.map):
            raise ValueError(f"advance got {len(tokens)} tokens for {len(self.map)} rows")
        keys = [(int(p), int(t)) for p, t in zip(self.map, tokens, strict=True)]
        parents, firsts, self.map = _distinct(keys)
        self._regather(parents)
        self.inner.advance(tokens[firsts])
        self.forwarded_rows.append(len(firsts))
        self._logprobs = None

    # -- chunks (speculative drafts) -----------------------------------------------------
    @property
    def supports_chunks(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "supports_chunks", False))

    def advance_chunks(self, chunks: Sequence[np.ndarray]) -> None:
        if len(chunks) != len(self.map):
            raise ValueError(f"advance_chunks got {len(chunks)} chunks for {len(self.map)} rows")
        keys = [(int(p), tuple(int(t) for t in c)) for p, c in zip(self.map, chunks, strict=True)]
        parents, firsts, self.map = _distinct(keys)
        self._regather(parents)
        self.inner.advance_chunks([np.asarray(chunks[k], np.int64) for k in firsts])
        self.forwarded_rows.append(len(firsts))
        self._logprobs = None

    def chunk_logprobs(self, row: int, j: int) -> np.ndarray:
        return self.inner.chunk_logprobs(int(self.map[row]), j)

    def accept(self, lengths: Sequence[int]) -> None:
        """Rows that shared a chunk but keep different lengths of it part here."""
        lengths = np.asarray(lengths, np.int64)
        if len(lengths) != len(self.map):
            raise ValueError("accept needs one length per row")
        keys = [(int(p), int(m)) for p, m in zip(self.map, lengths, strict=True)]
        parents, firsts, self.map = _distinct(keys)
        self._regather(parents)
        self.inner.accept(lengths[firsts])
        self._logprobs = None

    def _regather(self, parents: np.ndarray) -> None:
        """Make the inner state's rows ``parents`` (skipped when they already are)."""
        if len(parents) != self.inner.rows or (parents != np.arange(len(parents))).any():
            self.inner.select(parents)


def _distinct(keys: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For keys (inner row, payload): the inner row of each distinct key (first-seen
    order), the first row holding it, and each row's index among the distinct keys."""
    index: dict[tuple, int] = {}
    firsts: list[int] = []
    inverse = np.empty(len(keys), np.int64)
    for r, key in enumerate(keys):
        k = index.get(key)
        if k is None:
            k = index[key] = len(firsts)
            firsts.append(r)
        inverse[r] = k
    first = np.asarray(firsts, np.int64)
    parents = np.asarray([keys[r][0] for r in firsts], np.int64)
    return parents, first, inverse


__all__ = ["DedupState", "start"]
