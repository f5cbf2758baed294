"""Write a HumanEval function with the embedded model: SMC with the Python grammar as the
constraint and the sandboxed Python critic, then run the task's tests in the sandbox.

    .venv/bin/python examples/python.py [HumanEval/2] [--particles 10] [--method smc]
"""

from __future__ import annotations

import argparse
import warnings

import smc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", nargs="?", default="HumanEval/2")
    ap.add_argument("--particles", type=int, default=10)
    ap.add_argument("--method", default="smc", choices=["direct", "lcd", "rerank", "is", "smc"])
    ap.add_argument("--max-tokens", type=int, default=160)
    args = ap.parse_args()

    lm = smc.load_model()
    dom = smc.domains.load("python")
    task = dom.task(args.task)
    bound = dom.for_task(task)                      # the critic knows the task's context
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # "every particle died" is reported below
        res = smc.generate(lm, bound.prompt(task.question, lm), constraint=bound.constraint,
                           critic=bound.critic, method=args.method, n_particles=args.particles,
                           max_tokens=args.max_tokens, seed=0)
    print(f"{task.id} ({args.method}, {args.particles} particles, {res.seconds:.1f} s, "
          f"{bound.critic.runs} sandbox runs by the critic)")
    print(res.best if res.best is not None else f"no output: {res.deaths}")
    ev = bound.evaluate(res.best, task)
    print(f"valid={ev.valid} correct={ev.correct} status={ev.details['status']} "
          f"error={ev.details['error']}")


if __name__ == "__main__":
    main()
