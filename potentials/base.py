"""The potential interface: non-negative scores of text, held as log-weights.

A potential Φ has two forms, both log-weights (−inf = impossible):

* ``complete(x)  = log Φ(x)`` for a finished output ``x``;
* ``prefix(x)   ≥ log max_{y ⊒ x} Φ(y)`` — an upper bound (or estimate) of Φ over
  every completion of ``x``.  For a boolean potential it is 0 when some
  completion is accepted and −inf otherwise.

Consistency the engine relies on: once ``prefix(x) == -inf`` every extension of
``x`` is also −inf (the engine prunes on it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NEG_INF = float("-inf")


class Potential:
    """Base class of every potential.  Subclasses implement ``prefix`` and ``complete``."""

    def prefix(self, text: str) -> float:
        """log of an upper bound of Φ over the completions of ``text``."""
        raise NotImplementedError

    def complete(self, text: str) -> float:
        """log Φ(text) for a finished output."""
        raise NotImplementedError

    def prefix_held(self, text: str, held: bytes) -> float:
        """log of an upper bound of Φ over the completions of ``text`` whose next character
        starts with the bytes ``held`` (an unfinished UTF-8 character after a token that
        ended inside it).  Default ``prefix(text)``: any character may follow; a grammar
        narrows it (``potentials.held_chars``)."""
        return self.prefix(text)

    def prefix_batch(self, texts: Sequence[str]) -> list[float]:
        """``prefix`` of many texts; override when batching is cheaper."""
        return [self.prefix(t) for t in texts]

    def complete_batch(self, texts: Sequence[str]) -> list[float]:
        """``complete`` of many texts; override when batching is cheaper."""
        return [self.complete(t) for t in texts]

    def evaluate_at(self, text: str) -> bool:
        """Whether a critic is evaluated after ``text`` (a boundary schedule).

        The twist telescopes, so any schedule gives the same final weight
        p(x)Φ(x)/q(x); evaluating more often prunes earlier.  Default: every step.
        """
        return True

    def token_masker(self, vocab_bytes, eos_ids):
        """A fast exact mask for a vocabulary, or None (the engine then walks the trie).

        A masker has ``token_ids(text) -> ids`` of the tokens v with
        prefix(text·v) > −inf (EOS: complete(text) > −inf), for a boolean potential.
        """
        return None

    def __mul__(self, other: Potential) -> Potential:
        if not isinstance(other, Potential):
            return NotImplemented
        left = self.factors if isinstance(self, Product) else (self,)
        right = other.factors if isinstance(other, Product) else (other,)
        return Product(*left, *right)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Product(Potential):
    """Φ(x) = Π Φᵢ(x): log-weights add; −inf in any factor short-circuits."""

    def __init__(self, *factors: Potential) -> None:
        if not factors:
            raise ValueError("Product needs at least one potential")
        for f in factors:
            if not isinstance(f, Potential):
                raise TypeError(f"Product factors must be Potentials, got {type(f).__name__}")
        self.factors: tuple[Potential, ...] = tuple(factors)

    def prefix(self, text: str) -> float:
        total = 0.0
        for f in self.factors:
            v = f.prefix(text)
            if v == NEG_INF:
                return NEG_INF
            total += v
        return total

    def prefix_held(self, text: str, held: bytes) -> float:
        total = 0.0
        for f in self.factors:
            v = f.prefix_held(text, held)
            if v == NEG_INF:
                return NEG_INF
            total += v
        return total

    def complete(self, text: str) -> float:
        total = 0.0
        for f in self.factors:
            v = f.complete(text)
            if v == NEG_INF:
                return NEG_INF
            total += v
        return total

    def evaluate_at(self, text: str) -> bool:
        return any(f.evaluate_at(text) for f in self.factors)

    def __repr__(self) -> str:
        return " * ".join(repr(f) for f in self.factors)


class FunctionPotential(Potential):
    """A potential from two plain functions returning log-weights."""

    def __init__(self, prefix, complete=None, name: str = "FunctionPotential") -> None:
        self._prefix = prefix
        self._complete = complete if complete is not None else prefix
        self.name = name

    def prefix(self, text: str) -> float:
        return float(self._prefix(text))

    def complete(self, text: str) -> float:
        return float(self._complete(text))

    def __repr__(self) -> str:
        return self.name


def check_log_weight(value: float, where: str) -> float:
    """Reject NaN and +inf log-weights with an error that says which potential made it."""
    value = float(value)
    if math.isnan(value) or value == math.inf:
        raise ValueError(f"{where} returned {value!r}; a log-weight must be finite or -inf")
    return value
