"""The main job: constrained generation with the embedded model, offline.

SmolLM2-135M-Instruct writes arithmetic expressions that equal 24.  The arith
grammar is the constraint (inside the proposal); a critic scores how close the
value is (weights only).  SMC samples from p(x)·1[x parses]·exp(−|value − 24|).
"""

import sys

from smc.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
