"""Text-to-SQL on a shipped SQLite database with the embedded model, scored by execution.

The schema-specialised SELECT grammar is the constraint (only the database's tables and
columns can be named); the scope critic kills a prefix once a name is definitely out of
scope and, at the end, keeps only queries SQLite compiles.  The database is opened
read-only.  Prints the weighted queries and the execution-accuracy evaluation.

    python examples/sql.py [DB] [TASK_ID_OR_INDEX] [PARTICLES]     # e.g. library library-04 10
"""

import sys

import smc
import smc.domains


def main(db: str = "shop", which: str = "0", particles: int = 10) -> None:
    dom = smc.domains.load("sql", db=db)
    tasks = dom.tasks()
    task = tasks[int(which)] if which.isdigit() else next(t for t in tasks if t.id == which)
    lm = smc.load_model()
    print(f"{task.id}: {task.question}\ngold: {task.gold}\n")
    res = smc.generate(lm, dom.prompt(task.question, lm), constraint=dom.constraint,
                       critic=dom.critic, method="smc", n_particles=particles,
                       max_tokens=dom.max_tokens, seed=0, progress=True)
    for query, prob in sorted(res.posterior.items(), key=lambda kv: -kv[1]):
        ev = dom.evaluate(query, task)
        print(f"{prob:6.3f}  {query}  [runs={ev.valid} correct={ev.correct}]")
    if not res.posterior:
        print("every particle died or ran out of tokens:", res.deaths)
    ev = dom.evaluate(res.best, task)
    print(f"\nbest: {res.best}\nevaluation: valid={ev.valid} correct={ev.correct} "
          f"({ev.details.get('rows')} rows vs {ev.details.get('gold_rows')})  {res.seconds:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:3], *(int(a) for a in sys.argv[3:4]))
