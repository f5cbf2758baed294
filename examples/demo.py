"""The main job: text-to-SQL with the embedded model, offline.

SmolLM2-135M-Instruct answers three questions about the shipped ``shop`` SQLite database.
The constraint is the SELECT grammar specialised to the database's schema (inside the
proposal); the critic checks that every referenced table and column is in scope at clause
boundaries and that the finished query compiles (weights only).  SMC samples from
p(x)·1[x parses]·1[x is in scope and compiles]; each answer is executed read-only and
compared with the gold query's rows.

    python examples/demo.py [--method smc] [--particles 10] [--json]
"""

import sys

from smc.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--particles" not in args:
        args += ["--particles", "10"]
    sys.exit(main(["sql", "--db", "shop", "--task", "shop-01", "--task", "shop-04",
                   "--task", "shop-11", *args]))
