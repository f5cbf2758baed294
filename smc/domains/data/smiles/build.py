"""Rebuild ``moses_pool.smi``: a seeded sample of the MOSES test set shipped in ``molsets``.

    pip install --no-deps molsets        # MIT licence; its data is a gzipped CSV of SMILES
    python smc/domains/data/smiles/build.py [--size 2000] [--seed 0] [--check]

The CSV is read straight from the installed package folder (``moses`` itself is never
imported: it needs torch-era dependencies).  Each kept SMILES sanitises in RDKit; the file
holds one SMILES per line after ``#`` header lines.  ``--check`` rebuilds in memory and
exits 1 if the shipped file differs.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "moses_pool.smi"


def moses_test_csv() -> Path:
    """Path of ``moses/dataset/data/test.csv.gz`` in the installed ``molsets``."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("molsets is not installed: pip install --no-deps molsets")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data" / "test.csv.gz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing from the molsets package")
    return path


def build(size: int, seed: int) -> str:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    with gzip.open(moses_test_csv(), "rt", encoding="utf-8") as f:
        rows = [r["SMILES"] for r in csv.DictReader(f)]
    rng = random.Random(seed)
    rng.shuffle(rows)
    kept: list[str] = []
    for smi in rows:
        if Chem.MolFromSmiles(smi) is not None:
            kept.append(smi)
        if len(kept) == size:
            break
    header = (f"# {size} SMILES sampled (random.Random({seed}).shuffle) from the MOSES test set\n"
              "# (molsets 0.3.1, moses/dataset/data/test.csv.gz, MIT licence), by build.py\n")
    return header + "\n".join(kept) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    text = build(args.size, args.seed)
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print("moses_pool.smi is up to date" if same else "moses_pool.smi differs")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({args.size} SMILES)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
