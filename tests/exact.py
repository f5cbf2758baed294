"""Exact laws on small FunctionLMs, by enumerating every token sequence.

For a FunctionLM and potentials, enumerate all sequences of at most
``max_tokens`` tokens that end in EOS and compute
  * π(s)  ∝ p(s)·Φ(decode s)                      (the target, Φ = constraint × critic)
  * Z     = Σ_s p(s)·Φ(decode s)                   (the normalising constant)
  * lcd(s) = Π_t q(v_t | x_<t), conditioned on finishing (the locally constrained law)
each marginalised over decoded strings.
"""

from __future__ import annotations

import math

import numpy as np

from potentials.base import NEG_INF
from smc.token_bytes import complete_utf8


def _text(lm, seq):
    data = b"".join(lm.vocab_bytes[t] or b"" for t in seq)
    text, held = complete_utf8(data)
    return text, held


def enumerate_laws(lm, constraint=None, critic=None, max_tokens=6):
    """Return (pi, Z, lcd) with pi and lcd dicts text -> probability."""
    pi: dict[str, float] = {}
    lcd: dict[str, float] = {}
    eos = lm.eos

    def phi(text: str) -> float:
        total = 0.0
        for pot in (constraint, critic):
            if pot is not None:
                total += pot.complete(text)
        return total

    def mask(seq):
        """log c(v | seq) for every v (−inf where forbidden)."""
        text, held = _text(lm, seq)
        out = np.full(lm.vocab_size, NEG_INF)
        if constraint is None:
            out[:] = 0.0
            return out
        base = constraint.prefix(text)
        if base == NEG_INF:
            return out
        for v in range(lm.vocab_size):
            if v == eos:
                if not held:
                    out[v] = constraint.complete(text) - base
            else:
                t2, _ = _text(lm, [*seq, v])
                out[v] = constraint.prefix(t2) - base
        return out

    def walk(seq, log_p, log_q):
        lp = lm.logprobs_of(tuple(seq))
        c = mask(seq)
        scores = lp + c
        m = np.max(scores)
        log_z = NEG_INF if m == NEG_INF else m + math.log(np.exp(scores - m).sum())
        for v in range(lm.vocab_size):
            lp_v = log_p + lp[v]
            lq_v = log_q + (scores[v] - log_z if log_z > NEG_INF else NEG_INF)
            if v == eos:
                text, held = _text(lm, seq)
                if held:
                    continue
                w = lp_v + phi(text)
                if w > NEG_INF:
                    pi[text] = pi.get(text, 0.0) + math.exp(w)
                if lq_v > NEG_INF:
                    lcd[text] = lcd.get(text, 0.0) + math.exp(lq_v)
            elif len(seq) + 1 < max_tokens:
                walk([*seq, v], lp_v, lq_v)

    walk([], 0.0, 0.0)
    z = sum(pi.values())
    pi = {k: v / z for k, v in pi.items()} if z > 0 else {}
    total = sum(lcd.values())
    lcd = {k: v / total for k, v in lcd.items()} if total > 0 else {}
    return pi, z, lcd


def tv(p: dict[str, float], q: dict[str, float]) -> float:
    """Total-variation distance between two laws given as dicts."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def random_function_lm(vocab, eos, seed=0, temperature=1.5):
    """A FunctionLM whose next-token law depends on the whole prefix (hash-seeded logits)."""
    from smc import FunctionLM

    def next_logprobs(ids):
        r = np.random.default_rng([seed, len(ids), *ids])
        logits = r.normal(size=len(vocab)) * temperature
        logits[eos] += 0.5 * len(ids) - 1.0  # EOS grows likelier with length
        return logits - np.logaddexp.reduce(logits)

    return FunctionLM(vocab, eos, next_logprobs)


def tv_noise(law: dict[str, float], n: int) -> float:
    """Expected TV between ``law`` and the empirical law of ``n`` iid draws from it (≈)."""
    return 0.5 * sum(math.sqrt(2 * q * (1 - q) / (math.pi * n)) for q in law.values())
