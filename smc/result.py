"""Particles and the result of a run: weighted samples, posterior, log Ẑ, traces."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NEG_INF = float("-inf")


@dataclass
class Particle:
    """One partial or complete output.

    ``finished`` is True once the particle emitted EOS; ``log_weight`` is its
    final (unnormalised) log importance weight, −inf when it died.
    """

    token_ids: list[int]
    text: str
    log_weight: float
    finished: bool
    death: str | None = None  # why it has zero weight, when it does


@dataclass
class Result:
    """What ``smc.generate`` returns."""

    posterior: dict[str, float]
    log_ml: float
    particles: list[Particle]
    ess_trace: list[float]
    method: str
    n_particles: int
    seconds: float = 0.0
    tokens_generated: int = 0
    resampled_at: list[int] = field(default_factory=list)
    log_weight_trace: list[list[float]] = field(default_factory=list)
    forward_seconds: float = 0.0
    steps: int = 0
    deaths: dict[str, int] = field(default_factory=dict)
    # per step: wall seconds, seconds in the model forward, live rows in the batch,
    # seconds in the proposal (sampling and the constraint's mask)
    timing: dict[str, list[float]] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        """The output with the largest posterior mass (None if the posterior is empty)."""
        if not self.posterior:
            return None
        return max(self.posterior.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]

    def to_json(self) -> dict:
        """A JSON-ready dict (log_ml is null when undefined or −inf)."""
        finite = self.log_ml if math.isfinite(self.log_ml) else None
        return {
            "best": self.best,
            "posterior": self.posterior,
            "log_ml": finite,
            "ess_trace": self.ess_trace,
            "method": self.method,
            "n_particles": self.n_particles,
            "seconds": self.seconds,
            "tokens_generated": self.tokens_generated,
            "resampled_at": self.resampled_at,
            "deaths": self.deaths,
        }

    def summary(self, top: int = 10) -> str:
        """A readable table of the posterior, log Ẑ and ESS."""
        lines = [
            f"method={self.method}  particles={self.n_particles}  steps={self.steps}  "
            f"tokens={self.tokens_generated}  {self.seconds:.2f}s "
            f"(model forward {self.forward_seconds:.2f}s)",
            f"log Z-hat = {self.log_ml:.4f}" if not math.isnan(self.log_ml) else
            "log Z-hat = n/a (method carries no weights)",
            f"resampled at steps {self.resampled_at}" if self.resampled_at else "no resampling",
        ]
        if not self.posterior:
            why = ", ".join(f"{k}: {v}" for k, v in self.deaths.items()) or "no output"
            lines.append(f"empty posterior ({why})")
            return "\n".join(lines)
        lines.append(f"{'prob':>8}  output")
        ranked = sorted(self.posterior.items(), key=lambda kv: -kv[1])
        for text, prob in ranked[:top]:
            lines.append(f"{prob:8.4f}  {text!r}")
        if len(ranked) > top:
            lines.append(f"{'':8}  ... {len(ranked) - top} more")
        return "\n".join(lines)


def posterior_from(particles: list[Particle], weighted: bool) -> dict[str, float]:
    """Normalised mass per decoded output among finished particles.

    Weighted methods normalise exp(log_weight); unweighted ones (direct, lcd)
    give each finished particle equal mass (the empirical law).
    """
    done = [p for p in particles if p.finished and p.log_weight != NEG_INF]
    if not done:
        return {}
    if weighted:
        m = max(p.log_weight for p in done)
        mass = [math.exp(p.log_weight - m) for p in done]
    else:
        mass = [1.0] * len(done)
    total = sum(mass)
    out: dict[str, float] = {}
    for p, w in zip(done, mass, strict=True):
        out[p.text] = out.get(p.text, 0.0) + w / total
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
