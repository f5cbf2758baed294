"""New molecules like a few examples: SMILES from the embedded model, valid by construction.

The OpenSMILES grammar is the constraint (inside the proposal); the RDKit critic kills a
prefix only when no completion can be a valid molecule and keeps, at the end, only what
RDKit sanitises.  Prints each weighted output with its QED, then the set metrics.

    python examples/smiles.py [TASK_INDEX] [PARTICLES]
"""

import sys
import warnings

import smc
import smc.domains


def main(index: int = 0, particles: int = 10) -> None:
    dom = smc.domains.load("smiles")
    task = dom.tasks()[index]
    bound = dom.for_task(task)
    lm = smc.load_model()
    print(bound.instruction(task.question), "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a run where every particle dies
        res = smc.generate(lm, bound.prompt(task.question, lm), constraint=bound.constraint,
                           critic=bound.critic, method="smc", n_particles=particles,
                           max_tokens=bound.max_tokens, seed=0, progress=True)
    for smiles, prob in sorted(res.posterior.items(), key=lambda kv: -kv[1]):
        ev = bound.evaluate(smiles, task)
        print(f"{prob:6.3f}  {smiles}  QED={ev.score:.3f}  novel={ev.details.get('novel')}")
    if not res.posterior:
        print("every particle died or ran out of tokens:", res.deaths)
    print(dom.summarise(list(res.posterior), examples=task.meta["examples"]))
    print(f"{res.seconds:.1f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
