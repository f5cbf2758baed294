"""The particle population: token ids, decoded text, held UTF-8 bytes, weights.

Row bookkeeping: ``rows[k]`` is the particle that occupies row k of the
language model's batch state.  Only live (unfinished, not dead) particles hold
a row, so finished ones cost nothing in the forward pass.
"""

from __future__ import annotations

import numpy as np

from smc.result import Particle
from smc.token_bytes import complete_utf8

NEG_INF = float("-inf")


class Population:
    """N particles advanced one token at a time."""

    def __init__(self, n: int, log_weight0: float, critic0: float) -> None:
        self.n = n
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.data: list[bytes] = [b""] * n
        self.text: list[str] = [""] * n
        self.held: list[bytes] = [b""] * n
        self.log_w = np.full(n, log_weight0, dtype=np.float64)
        self.critic_last = np.full(n, critic0, dtype=np.float64)
        self.finished = np.zeros(n, dtype=bool)
        self.dead = np.zeros(n, dtype=bool)
        self.death: list[str | None] = [None] * n
        self.rows = np.arange(n, dtype=np.int64)  # particle index of each LM row

    def live(self) -> np.ndarray:
        return ~(self.finished | self.dead)

    def kill(self, i: int, reason: str) -> None:
        self.dead[i] = True
        self.log_w[i] = NEG_INF
        if self.death[i] is None:
            self.death[i] = reason

    def append(self, i: int, token: int, token_bytes: bytes | None) -> bool:
        """Add a token to particle i; return whether its complete text changed."""
        self.tokens[i].append(token)
        if not token_bytes:
            return False
        self.data[i] = self.data[i] + token_bytes
        combined = self.held[i] + token_bytes
        tail, n_held = complete_utf8(combined)
        self.held[i] = combined[len(combined) - n_held :] if n_held else b""
        if not tail:
            return False
        self.text[i] = self.text[i] + tail
        return True

    def take(self, ancestors: np.ndarray) -> None:
        """Replace every particle j by a copy of particle ancestors[j]."""
        a = [int(k) for k in ancestors]
        self.tokens = [list(self.tokens[k]) for k in a]
        self.data = [self.data[k] for k in a]
        self.text = [self.text[k] for k in a]
        self.held = [self.held[k] for k in a]
        self.log_w = self.log_w[ancestors].copy()
        self.critic_last = self.critic_last[ancestors].copy()
        self.finished = self.finished[ancestors].copy()
        self.dead = self.dead[ancestors].copy()
        self.death = [self.death[k] for k in a]

    def particles(self) -> list[Particle]:
        return [
            Particle(
                token_ids=list(self.tokens[i]),
                text=self.text[i],
                log_weight=float(self.log_w[i]),
                finished=bool(self.finished[i]),
                death=self.death[i],
            )
            for i in range(self.n)
        ]
