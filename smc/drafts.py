"""Prompt-lookup drafts for speculative steps (``smc.generate(..., speculate=k)``).

A draft is the k tokens that followed the latest earlier occurrence of a particle's last
n tokens (n = ``n_max`` … ``n_min``, longest first), in its own output or else in the
prompt (a draft costs forward compute whether or not it is taken, and one-token matches
are mostly wrong: ``n_min`` = 2 by default):
small models asked for SQL copy their few-shot examples and repeat themselves, so the
tokens they draw often continue such a match.  A draft only decides which positions a
step's forward computes ahead; every token is still drawn from the proposal at its
position, and a draw that differs from the draft ends the particle's step there.  The
draft changes the cost of a run, never its law.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class PromptLookup:
    """Drafts from one prompt's n-grams and each particle's own tokens."""

    N_MIN = 2  # the shortest match that gives a draft, unless ``n_min`` says otherwise

    def __init__(self, prompt_ids: Sequence[int], n_max: int = 3,
                 eos_ids: Iterable[int] = (), n_min: int | None = None) -> None:
        n_min = self.N_MIN if n_min is None else n_min
        if not 1 <= n_min <= n_max:
            raise ValueError(f"need 1 <= n_min <= n_max, got {n_min}, {n_max}")
        self.prompt = [int(t) for t in prompt_ids]
        self.n_max = n_max
        self.n_min = n_min
        self.eos = frozenset(int(t) for t in eos_ids)
        # n-gram -> position after its latest occurrence that some token follows
        self.after: dict[tuple[int, ...], int] = {}
        for n in range(n_min, n_max + 1):
            for s in range(len(self.prompt) - n):
                self.after[tuple(self.prompt[s: s + n])] = s + n

    def draft(self, tokens: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` tokens likely to follow ``tokens`` (a particle's output so far)."""
        if k <= 0 or not tokens:
            return []
        for n in range(min(self.n_max, len(tokens)), self.n_min - 1, -1):
            pattern = list(tokens[-n:])
            for s in range(len(tokens) - n - 1, -1, -1):   # own output, latest first
                if tokens[s] == pattern[0] and list(tokens[s: s + n]) == pattern:
                    return self._cut(tokens[s + n: s + n + k])
            pos = self.after.get(tuple(pattern))
            if pos is not None:
                return self._cut(self.prompt[pos: pos + k])
        return []

    def _cut(self, tokens: Sequence[int]) -> list[int]:
        """The draft up to and including its first EOS (nothing is drawn after one)."""
        out = []
        for t in tokens:
            out.append(int(t))
            if t in self.eos:
                break
        return out
