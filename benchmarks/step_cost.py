"""Cost of one SMC step with the embedded model on this CPU, split into model forward vs the rest.

For N = 1, 4, 16, 64 particles it runs ``smc.generate(method="smc")`` on the
demo prompt, twice: without a constraint (the engine's own overhead: sampling,
weights, ESS, resampling, bookkeeping) and with the arith Lark grammar as the
constraint (adds the exact token mask over the 49k vocabulary).  Each step's
wall time is split into the batched forward and everything else.  The last
column is the ratio of a full step to a plain batched forward of the same N
(timed on its own, same prompt, no sampling).

    python benchmarks/step_cost.py [--particles 1 4 16 64] [--tokens 24] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

import potentials
import smc
from smc.cli import DEMO_QUESTION


def plain_forward_ms(lm, prompt_ids, n: int, steps: int) -> list[float]:
    """Milliseconds of one batched forward of n rows, without any sampling."""
    state = lm.start(prompt_ids, n)
    out = []
    token = np.full(n, lm.encode(" 1")[-1])
    for _ in range(steps):
        t = time.perf_counter()
        state.advance(token)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"median": float(np.median(a)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--particles", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--tokens", type=int, default=24, help="max_tokens per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs (seeds) per setting")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    lm = smc.load_model()
    prompt = lm.chat(DEMO_QUESTION)
    prompt_ids = lm.encode(prompt)
    grammar = potentials.LarkGrammar(__import__("grammars").load("arith"))
    smc.generate(lm, prompt, constraint=grammar, n_particles=2, max_tokens=4)  # warm caches
    rows = []
    for n in args.particles:
        plain = plain_forward_ms(lm, prompt_ids, n, args.tokens)
        for label, constraint in (("none", None), ("arith grammar", grammar)):
            step, fwd, live = [], [], []
            for seed in range(args.repeats):
                res = smc.generate(lm, prompt, constraint=constraint, method="smc",
                                   n_particles=n, max_tokens=args.tokens, seed=seed)
                step += [s * 1e3 for s in res.timing["step"]]
                fwd += [f * 1e3 for f in res.timing["forward"]]
                live += res.timing["rows"]
            other = [s - f for s, f in zip(step, fwd, strict=True)]
            row = {
                "n": n, "constraint": label, "steps": len(step),
                "mean_live_rows": float(np.mean(live)),
                "step_ms": stats(step), "forward_ms": stats(fwd), "other_ms": stats(other),
                "plain_forward_ms": stats(plain),
                "ratio_step_to_plain_forward": float(np.median(step) / np.median(plain)),
            }
            rows.append(row)
            if not args.json:
                print(f"N={n:3d} {label:14s} done", file=sys.stderr)
    meta = {"cpu": platform.processor() or platform.machine(), "torch_threads":
            torch.get_num_threads(), "model": lm.name, "prompt_tokens": len(prompt_ids),
            "max_tokens": args.tokens, "repeats": args.repeats}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return 0
    print(f"model {lm.name}, prompt {len(prompt_ids)} tokens, torch threads "
          f"{meta['torch_threads']}, {args.repeats} runs x {args.tokens} tokens per setting")
    head = ("| N | constraint | live rows | step ms (median / p99) | forward ms | other ms | "
            "plain forward ms | step / plain forward |")
    print(head)
    print("|" + "---|" * 8)
    for r in rows:
        print(f"| {r['n']} | {r['constraint']} | {r['mean_live_rows']:.1f} | "
              f"{r['step_ms']['median']:.1f} / {r['step_ms']['p99']:.1f} | "
              f"{r['forward_ms']['median']:.1f} | {r['other_ms']['median']:.1f} | "
              f"{r['plain_forward_ms']['median']:.1f} | "
              f"{r['ratio_step_to_plain_forward']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
