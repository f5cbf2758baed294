"""Cost of one SMC step with the embedded model on this CPU, split into model forward vs the rest.

For N = 1, 4, 16, 64 particles it runs ``smc.generate(method="smc")`` on a prompt
asking for a JSON object, three ways: without a constraint (the engine's own
overhead: sampling, weights, ESS, resampling, bookkeeping), with the shipped JSON
Lark grammar through the exact compiled token mask (``proposal="mask"``), and through
adaptive weighted rejection sampling (``proposal="awrs"``).  Each step's wall time is
split into the batched forward, the proposal (drawing tokens, the constraint's mask
or checks) and everything else.  The ratio column compares a full step to a plain
batched forward of the same N (timed on its own, same prompt, no sampling).

    python benchmarks/step_cost.py [--particles 1 4 16 64] [--tokens 24] [--repeats 3]
           [--dtype float32|bfloat16] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

import grammars
import potentials
import smc

PROMPT = "Give a JSON object describing a cat (name, age, colours). Answer with JSON only."


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
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                        help="model dtype (default: load_model's choice for this CPU)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    lm = smc.load_model(dtype=args.dtype)
    prompt = lm.chat(PROMPT)
    prompt_ids = lm.encode(prompt)
    grammar = potentials.LarkGrammar(grammars.load("json"))
    for proposal in ("mask", "awrs"):  # warm caches: grammar compile, Numba, trie
        smc.generate(lm, prompt, constraint=grammar, n_particles=4, max_tokens=8,
                     proposal=proposal)
    settings = [("none", None, "mask"), ("json grammar", grammar, "mask"),
                ("json grammar", grammar, "awrs")]
    rows = []
    for n in args.particles:
        plain = plain_forward_ms(lm, prompt_ids, n, args.tokens)
        for label, constraint, proposal in settings:
            step, fwd, prop, live = [], [], [], []
            for seed in range(args.repeats):
                res = smc.generate(lm, prompt, constraint=constraint, method="smc",
                                   proposal=proposal, n_particles=n, max_tokens=args.tokens,
                                   seed=seed)
                k = len(res.timing["step"])
                step += [s * 1e3 for s in res.timing["step"]]
                fwd += [f * 1e3 for f in res.timing["forward"]]
                prop += [p * 1e3 for p in res.timing["proposal"][:k]]
                live += res.timing["rows"][:k]
            other = [s - f - p for s, f, p in zip(step, fwd, prop, strict=True)]
            row = {
                "n": n, "constraint": label, "proposal": proposal, "steps": len(step),
                "mean_live_rows": float(np.mean(live)),
                "step_ms": stats(step), "forward_ms": stats(fwd), "proposal_ms": stats(prop),
                "other_ms": stats(other), "plain_forward_ms": stats(plain),
                "proposal_share": float(np.sum(prop) / np.sum(step)),
                "ratio_step_to_plain_forward": float(np.median(step) / np.median(plain)),
            }
            rows.append(row)
            if not args.json:
                print(f"N={n:3d} {label:14s} {proposal} done", file=sys.stderr)
    meta = {"dtype": str(next(lm.model.parameters()).dtype),
            "cpu": platform.processor() or platform.machine(), "torch_threads":
            torch.get_num_threads(), "model": lm.name, "prompt_tokens": len(prompt_ids),
            "max_tokens": args.tokens, "repeats": args.repeats,
            "kv_cache": "shared prefix" if lm.shares_prefix else "transformers"}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return 0
    print(f"model {lm.name} ({meta['dtype']}, {meta['kv_cache']} KV cache; "
          "SMC_DECODE_SHARED_PREFIX=0 for the transformers one), "
          f"prompt {len(prompt_ids)} tokens, torch threads "
          f"{meta['torch_threads']}, {args.repeats} runs x {args.tokens} tokens per setting")
    print("| N | constraint | proposal | live rows | step ms (median / p99) | forward ms | "
          "proposal ms | other ms | proposal share | plain forward ms | step / plain forward |")
    print("|" + "---|" * 11)
    for r in rows:
        print(f"| {r['n']} | {r['constraint']} | {r['proposal']} | {r['mean_live_rows']:.1f} | "
              f"{r['step_ms']['median']:.1f} / {r['step_ms']['p99']:.1f} | "
              f"{r['forward_ms']['median']:.1f} | {r['proposal_ms']['median']:.1f} | "
              f"{r['other_ms']['median']:.1f} | {100 * r['proposal_share']:.1f}% | "
              f"{r['plain_forward_ms']['median']:.1f} | "
              f"{r['ratio_step_to_plain_forward']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
