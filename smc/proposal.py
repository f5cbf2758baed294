"""Proposals: sample one token per particle and return the incremental log-weight.

* ``LMProposal``        q = p; incremental weight 0.
* ``MaskedProposal``    q(v | x) = p(v | x)·c(v | x) / Zₜ with the constraint's exact
  mask c; incremental weight log Zₜ = log Σᵥ p(v | x)·c(v | x).  EOS uses
  c = exp(complete(x) − prefix(x)).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from potentials.base import NEG_INF, Potential, check_log_weight
from smc.lm import LanguageModel
from smc.token_trie import TokenTrie


def exp_cumsum(scores: np.ndarray, shift: float) -> np.ndarray:
    """The running sums Σ_{j≤i} exp(scores_j − shift) (float64).

    Where torch is already loaded (a ``transformers`` model), its float64 exp and cumsum
    do the passes: vectorised, ~4× NumPy's on a CPU without AVX-512, where NumPy's
    float64 exp is scalar; the sums agree with NumPy's to a few ulp (so a draw at a
    cumulative-sum boundary may differ by one token between a process with torch loaded
    and one without: the law is the same).
    """
    torch = sys.modules.get("torch")
    if torch is not None and scores.dtype == np.float64 and scores.size >= 1024:
        t = torch.from_numpy(np.ascontiguousarray(scores))
        return torch.cumsum(torch.exp(t - shift), 0).numpy()
    return np.cumsum(np.exp(np.asarray(scores, np.float64) - shift))


def draw(scores: np.ndarray, u: float) -> tuple[int, float]:
    """Inverse-CDF draw from unnormalised log-probabilities ``scores`` with uniform ``u``,
    and log Σᵢ exp(scoresᵢ): (index, log-normaliser); (-1, −inf) when every score is −inf.
    One pass of exp and a running sum (``exp_cumsum``) serve both."""
    if scores.size == 0:
        return -1, NEG_INF
    m = float(np.max(scores))
    if m == NEG_INF:
        return -1, NEG_INF
    cdf = exp_cumsum(scores, m)
    total = float(cdf[-1])
    index = int(np.searchsorted(cdf, u * total, side="right"))
    if index >= len(cdf):  # u = 1: the last token of nonzero weight
        index = int(np.searchsorted(cdf, total, side="left"))
    return index, m + math.log(total)


def sample_from_logits(scores: np.ndarray, u: float) -> int:
    """Inverse-CDF draw from unnormalised log-probabilities ``scores`` with uniform ``u``."""
    return draw(scores, u)[0]


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
            index, log_z = draw(logprobs[ids], u)
            return (-1, NEG_INF) if index < 0 else (int(ids[index]), log_z)
        ids, logc = self.log_mask(text, held)
        if ids.size == 0:
            return -1, NEG_INF
        index, log_z = draw(logprobs[ids] + logc, u)
        return (-1, NEG_INF) if index < 0 else (int(ids[index]), log_z)
