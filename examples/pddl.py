"""Blocks-world plans with the embedded model: SMC vs plain sampling on one problem.

    python examples/pddl.py [PROBLEM_ID_OR_PATH] [--particles 10]

The problem's plan grammar is the constraint, the STRIPS simulator the critic; the
evaluator compares the best plan with the optimal length (A*).
"""

import argparse
import time

import smc

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("problem", nargs="?", default="generated_blocks/problem13")
ap.add_argument("--particles", type=int, default=10)
args = ap.parse_args()

lm = smc.load_model()
dom = smc.domains.load("pddl", problem=args.problem)
task = dom.task("")
print(dom.instruction(task.question).split("Now this problem.\n")[1], "\n")
for method in ("smc", "direct"):
    t = time.perf_counter()
    res = smc.generate(lm, dom.prompt(task.question, lm), constraint=dom.constraint,
                       critic=dom.critic, method=method, n_particles=args.particles,
                       max_tokens=dom.max_tokens, seed=0)
    ev = dom.evaluate(res.best, task)
    print(f"== {method} ({time.perf_counter() - t:.1f} s): valid={ev.valid} "
          f"correct={ev.correct} {ev.details}")
    print(res.best)
