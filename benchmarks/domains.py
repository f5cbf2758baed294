"""Accuracy, validity, tokens and seconds of direct / lcd / rerank / is / smc on every domain.

    python benchmarks/domains.py [--domains sql python smiles pddl] [--limit 10]
           [--methods direct lcd rerank is smc] [--particles 10] [--big-model gemma3-270m]
           [--out results.jsonl] [--json]

Every method runs with the same particle count and the embedded model (SmolLM2-135M);
``--big-model`` adds ``direct`` with a larger model (default the shipped Gemma-3-270M) to see
whether the small model with SMC beats a model twice its size without it.  Per task it records
the domain's evaluation of ``best``; per (domain, method) it prints accuracy with a 95%
bootstrap interval over tasks, validity, the domain's mean score (QED for smiles), tokens
generated per task and median seconds per task.  ``--out`` keeps one JSON line per solved
task and is read back on the next run, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("direct", "lcd", "rerank", "is", "smc")
DOMAINS = ("sql", "python", "smiles", "pddl")
EMBEDDED = "smollm2-135m"


def bootstrap_ci(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over tasks resampled with replacement."""
    if not values:
        return (float("nan"), float("nan"))
    arr = np.asarray(values, float)
    idx = np.random.default_rng(seed).integers(0, len(arr), size=(reps, len(arr)))
    means = arr[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(rows: list[dict]) -> dict:
    """Aggregate figures of the per-task records of one (domain, model, method)."""
    correct = [float(r["evaluation"]["correct"]) for r in rows]
    lo, hi = bootstrap_ci(correct)
    return {
        "tasks": len(rows),
        "accuracy": statistics.fmean(correct) if rows else float("nan"),
        "ci95": [lo, hi],
        "validity": statistics.fmean(float(r["evaluation"]["valid"]) for r in rows),
        "score": statistics.fmean(float(r["evaluation"]["score"]) for r in rows),
        "tokens_per_task": statistics.fmean(r["tokens_generated"] for r in rows),
        "seconds_median": statistics.median(r["seconds"] for r in rows),
        "seconds_mean": statistics.fmean(r["seconds"] for r in rows),
        "no_output": sum(r["best"] is None for r in rows),
    }


def _load_done(path: Path | None) -> dict[tuple, dict]:
    done: dict[tuple, dict] = {}
    if path is None or not path.is_file():
        return done
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            done[(r["domain"], r["model"], r["method"], r["particles"], r["id"])] = r
    return done


def run(args: argparse.Namespace) -> dict:
    from tqdm.auto import tqdm

    import smc
    from smc.domains.runner import solve

    out_path = Path(args.out) if args.out else None
    done = _load_done(out_path)
    out = out_path.open("a") if out_path else None
    models: dict[str, object] = {}

    def model(name: str):
        if name not in models:
            models[name] = smc.load_model(None if name == EMBEDDED else name)
        return models[name]

    plan = [(d, EMBEDDED, m) for d in args.domains for m in args.methods]
    if args.big_model:
        plan += [(d, args.big_model, "direct") for d in args.domains]
    records: dict[tuple, list[dict]] = {}
    doms = {d: smc.domains.load(d) for d in args.domains}
    tasks = {d: doms[d].benchmark_tasks(args.limit) for d in args.domains}
    total = sum(len(tasks[d]) for d, _, _ in plan)
    bar = tqdm(total=total, desc="tasks", unit="task", disable=args.json)
    for dom_name, model_name, method in plan:
        key = (dom_name, model_name, method)
        records[key] = []
        for task in tasks[dom_name]:
            k = (dom_name, model_name, method, args.particles, task.id)
            if k not in done:
                bar.set_postfix_str(f"{dom_name}/{method}/{model_name}")
                t0 = time.perf_counter()
                solved = solve(model(model_name), doms[dom_name], task, method=method,
                               n_particles=args.particles, seed=args.seed)
                rec = solved.to_json()
                rec.pop("posterior")
                rec.update(domain=dom_name, model=model_name, method=method,
                           particles=args.particles, wall=time.perf_counter() - t0)
                done[k] = rec
                if out:
                    out.write(json.dumps(rec, default=str) + "\n")
                    out.flush()
            records[key].append(done[k])
            bar.update(1)
    bar.close()
    table = []
    for (dom_name, model_name, method), rows in records.items():
        row = {"domain": dom_name, "model": model_name, "method": method,
               "particles": args.particles, **summarise(rows)}
        extra = getattr(type(doms[dom_name]), "summarise", None)
        if extra is not None:
            row["set"] = extra([r["best"] for r in rows])
        table.append(row)
    return {"particles": args.particles, "limit": args.limit, "seed": args.seed, "rows": table}


def print_table(report: dict) -> None:
    head = (f"{'domain':7} {'model':14} {'method':7} {'n':>3} {'accuracy [95% CI]':>22} "
            f"{'valid':>6} {'score':>6} {'tok/task':>8} {'s/task':>7}")
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        lo, hi = r["ci95"]
        print(f"{r['domain']:7} {r['model']:14} {r['method']:7} {r['tasks']:>3} "
              f"{r['accuracy']:>8.2f} [{lo:.2f}, {hi:.2f}]   {r['validity']:>6.2f} "
              f"{r['score']:>6.3f} {r['tokens_per_task']:>8.1f} {r['seconds_median']:>7.2f}"
              + (f"  {json.dumps(r['set'])}" if "set" in r else ""))
    print(f"\nparticles={report['particles']}  tasks per domain<={report['limit']}  "
          f"seed={report['seed']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--particles", type=int, default=10)
    p.add_argument("--limit", type=int, default=10, help="tasks per domain (the fixed subset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--big-model", default="gemma3-270m", help="'' to skip")
    p.add_argument("--out", help="JSONL of per-task records (resumes from it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
