"""Proposals: sample one token per particle and return the incremental log-weight.

* ``LMProposal``        q = p; incremental weight 0.
* ``MaskedProposal``    q(v | x) = p(v | x)·c(v | x) / Zₜ with the constraint's exact
  mask c; incremental weight log Zₜ = log Σᵥ p(v | x)·c(v | x).  EOS uses
  c = exp(complete(x) − prefix(x)).
"""

from __future__ import annotations

import numpy as np

from potentials.base import NEG_INF, Potential, check_log_weight
from smc.lm import LanguageModel
from smc.token_trie import TokenTrie


def _logsumexp(x: np.ndarray) -> float:
    if x.size == 0:
        return NEG_INF
    m = float(np.max(x))
    if m == NEG_INF:
        return NEG_INF
    return m + float(np.log(np.sum(np.exp(x - m))))


def sample_from_logits(scores: np.ndarray, u: float) -> int:
    """Inverse-CDF draw from unnormalised log-probabilities ``scores`` with uniform ``u``."""
    m = np.max(scores)
    cdf = np.cumsum(np.exp(scores - m))
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1))


_TRIES: dict[int, tuple[LanguageModel, TokenTrie]] = {}


def _byte_trie(lm: LanguageModel) -> TokenTrie:
    """One byte trie per language model, shared by every run on it."""
    got = _TRIES.get(id(lm))
    if got is None or got[0] is not lm:
        got = _TRIES[id(lm)] = (lm, TokenTrie(lm.vocab_bytes, exclude=lm.eos_ids))
    return got[1]


class LMProposal:
    """Plain ancestral sampling from the language model."""

    def step(self, logprobs: np.ndarray, text: str, held: bytes, u: float) -> tuple[int, float]:
        return sample_from_logits(logprobs, u), 0.0


class MaskedProposal:
    """The locally constrained proposal with an exact mask over the whole vocabulary."""

    def __init__(self, lm: LanguageModel, constraint: Potential, cache_size: int = 4096) -> None:
        self.lm = lm
        self.constraint = constraint
        self.eos_ids = np.asarray(sorted(lm.eos_ids), np.int64)
        self._trie: TokenTrie | None = None
        self.cache_size = cache_size
        self._cache: dict[tuple[str, bytes], tuple[np.ndarray, np.ndarray]] = {}
        self.masker = constraint.token_masker(lm.vocab_bytes, lm.eos_ids)

    @property
    def trie(self) -> TokenTrie:
        """The byte trie of the vocabulary, built on first use (the masker needs none)."""
        if self._trie is None:
            self._trie = _byte_trie(self.lm)
        return self._trie

    def log_mask(self, text: str, held: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Token ids v with c(v | x) > 0 and log c(v | x), EOS included."""
        key = (text, held)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        base = check_log_weight(self.constraint.prefix_held(text, held) if held
                                else self.constraint.prefix(text), f"{self.constraint!r}.prefix")
        if base == NEG_INF:
            out = (np.empty(0, np.int64), np.empty(0))
        else:
            ids, vals = self.trie.walk(self.constraint, text, held)
            vals = vals - base
            if not held:
                end = check_log_weight(
                    self.constraint.complete(text), f"{self.constraint!r}.complete"
                )
                if end != NEG_INF:
                    ids = np.concatenate([ids, self.eos_ids])
                    vals = np.concatenate([vals, np.full(len(self.eos_ids), end - base)])
            out = (ids, vals)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[key] = out
        return out

    def step(self, logprobs: np.ndarray, text: str, held: bytes, u: float) -> tuple[int, float]:
        """Draw v ~ q(· | x); return (v, log Zₜ).  No allowed token: (-1, -inf)."""
        if self.masker is not None and not held:  # boolean potential: log c = 0 on the mask
            ids = self.masker.token_ids(text)
            if ids.size == 0:
                return -1, NEG_INF
            scores = logprobs[ids]
            log_z = _logsumexp(scores)
            if log_z == NEG_INF:
                return -1, NEG_INF
            return int(ids[sample_from_logits(scores, u)]), log_z
        ids, logc = self.log_mask(text, held)
        if ids.size == 0:
            return -1, NEG_INF
        scores = logprobs[ids] + logc
        log_z = _logsumexp(scores)
        if log_z == NEG_INF:
            return -1, NEG_INF
        return int(ids[sample_from_logits(scores, u)]), log_z
