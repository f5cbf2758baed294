"""Plots of a run: ESS per step (with resampling marked) and the particles' log-weights."""

from __future__ import annotations

import math
from pathlib import Path

from smc.result import Result


def plot_traces(result: Result, path: str | Path) -> Path:
    """Write a two-panel PNG: ESS/N per step, and each particle's log-weight per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ess, ax_w) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    steps = range(1, len(result.ess_trace) + 1)
    ax_ess.plot(steps, [e / result.n_particles for e in result.ess_trace], marker=".")
    for s in result.resampled_at:
        ax_ess.axvline(s, color="tab:red", alpha=0.3, linewidth=1)
    ax_ess.set_ylabel("ESS / N")
    ax_ess.set_ylim(0, 1.05)
    ax_ess.set_title(f"{result.method}, N={result.n_particles}"
                     + (f", log Ẑ={result.log_ml:.3f}" if math.isfinite(result.log_ml) else ""))
    trace = result.log_weight_trace
    if trace:
        for i in range(len(trace[0])):
            ys = [row[i] if math.isfinite(row[i]) else math.nan for row in trace]
            ax_w.plot(steps[: len(ys)], ys, linewidth=0.8, alpha=0.6)
    ax_w.set_xlabel("step (token)")
    ax_w.set_ylabel("log-weight (dead: gap)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
