"""The ``smiles`` domain: new molecules, in SMILES, like a few examples.

Target π(x) ∝ p(x | k example molecules + request) · grammar(x) · valid(x): the OpenSMILES
Lark grammar (``grammars/smiles.lark``) is the constraint, and the critic
(``potentials.smiles_critic.SmilesValidity``) kills a prefix only when no completion can
sanitise in RDKit (provable ring-closure and valence errors) and at EOS keeps only outputs
RDKit sanitises.  The examples come from a pool of drug-like molecules: 2000 SMILES of the
MOSES test set shipped in ``data/smiles/moses_pool.smi`` (default), RDKit's own NCI sample
(``pool="nci"``) or a file.  ``evaluate`` scores one output: valid = RDKit sanitises,
score = QED; ``summarise`` gives the set metrics (validity, uniqueness, mean QED, novelty).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from potentials.smiles_critic import SmilesValidity, quiet
from smc.domains.base import Domain, Evaluation, Task

DATA = Path(__file__).resolve().parent / "data" / "smiles"
POOLS = {"moses": "the MOSES test set sample shipped with smc-decode (2000 drug-like SMILES)",
         "nci": "RDKit's Data/NCI/first_5K.smi (5000 NCI compounds, salts and metals included)"}
MAX_SHOTS = 20

# Themes of the shipped tasks: a group every example shares, named in the request.
THEMES = (("an amide group", "C(=O)[NX3]"), ("a sulfonamide", "S(=O)(=O)[NX3]"),
          ("an aromatic nitrogen", "n"), ("a halogen", "[F,Cl,Br,I]"),
          ("an ester", "C(=O)O[#6]"), ("a urea", "[NX3]C(=O)[NX3]"),
          ("an ether oxygen", "[OD2]([#6])[#6]"), ("a nitrile", "C#N"))


@cache
def _grammar():
    import grammars
    from potentials.lark_grammar import LarkGrammar

    return LarkGrammar(grammars.load("smiles"), start="answer")


def _mol(smiles: str):
    """The sanitised RDKit molecule of a bare SMILES, or None."""
    if not smiles or any(c.isspace() for c in smiles):
        return None
    from rdkit import Chem

    with quiet():
        return Chem.MolFromSmiles(smiles)


@cache
def _morgan():
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def read_pool(source: str | Path) -> list[str]:
    """SMILES of a pool: ``"moses"``, ``"nci"`` or a file (``.csv`` with a ``SMILES`` column,
    else one SMILES first on each line; ``#`` lines skipped).  Only molecules RDKit
    sanitises are kept, in file order, without duplicates."""
    if source == "moses":
        path = DATA / "moses_pool.smi"
    elif source == "nci":
        from rdkit import RDConfig

        path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"pool {str(source)!r} is neither a file nor one of "
                             f"{', '.join(POOLS)}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        column = next((c for c in (rows[0] if rows else {}) if c.lower() == "smiles"), None)
        if column is None:
            raise ValueError(f"pool {path} is a CSV file without a 'SMILES' column")
        raw = [r[column].strip() for r in rows]
    else:
        raw = [line.split()[0] for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    seen: set[str] = set()
    pool = []
    for smi in raw:
        if smi not in seen and _mol(smi) is not None:
            seen.add(smi)
            pool.append(smi)
    return pool


class SmilesDomain(Domain):
    """Few-shot molecule generation: k example SMILES and a request, one new SMILES out."""

    name = "smiles"
    description = ("Molecules as SMILES: a new molecule like k example ones (OpenSMILES "
                   "grammar + RDKit partial-validity critic; scored by validity and QED).")
    max_tokens = 64
    # SmolLM2 often repeats "C" until the budget: such particles outweigh finished molecules
    # at every step (each "C" is likely) and, resampled over them, die at the budget; so
    # only running particles resample, among themselves (README, domain table)
    smc_options = {"keep_finished": True}
    system = ("You are an expert medicinal chemist. You answer with exactly one molecule "
              "written as a SMILES string, and nothing else.")

    def __init__(self, shots: int = 5, pool: str | Path = "moses", pool_seed: int = 0,
                 n_tasks: int = 30, critic: bool = True) -> None:
        if not isinstance(shots, int) or not 1 <= shots <= MAX_SHOTS:
            raise ValueError(f"shots must be an integer in 1..{MAX_SHOTS}, got {shots!r}")
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer, got {n_tasks!r}")
        if not isinstance(pool_seed, int):
            raise ValueError(f"pool_seed must be an integer, got {pool_seed!r}")
        self.shots, self.pool_name, self.pool_seed, self.n_tasks = shots, pool, pool_seed, n_tasks
        self.pool = read_pool(pool)
        if len(self.pool) <= shots:
            raise ValueError(f"pool {str(pool)!r} has {len(self.pool)} valid molecules; "
                             f"{shots} shots need at least {shots + 1}")
        self.constraint = _grammar()
        self.critic = SmilesValidity() if critic else None
        self.examples: tuple[str, ...] | None = None   # set by for_task
        self._tasks: list[Task] | None = None

    # -- prompts ---------------------------------------------------------------
    def examples_for(self, question: str) -> list[str]:
        """``shots`` pool molecules for a free question, drawn with a seed made of
        ``pool_seed`` and the question text (the same question gets the same examples)."""
        digest = hashlib.sha256(f"{self.pool_seed}\0{question}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big")).sample(self.pool, self.shots)

    def instruction(self, question: str) -> str:
        examples = self.examples if self.examples is not None else self.examples_for(question)
        listing = "\n".join(examples)
        return (f"Here are {len(examples)} example molecules written as SMILES strings:\n"
                f"{listing}\n\nRequest: {question.strip()}\n"
                "Answer with one new SMILES string only.")

    # -- tasks -----------------------------------------------------------------
    def task(self, question: str, **fields: Any) -> Task:
        """A free request (e.g. "a small aromatic amine"); its examples are ``examples``
        when given (a list of SMILES), else ``examples_for(question)``."""
        examples = fields.pop("examples", None)
        t = super().task(question, **fields)
        if examples is None:
            examples = self.examples_for(question)
        return Task(t.id, t.question, t.gold, {**t.meta, "examples": _check_examples(examples)})

    def tasks(self) -> list[Task]:
        """``n_tasks`` seeded tasks: each takes a random pool molecule and its ``shots − 1``
        nearest neighbours (Morgan radius-2 Tanimoto) as examples, and asks for a new
        molecule like them, naming a group they all share when there is one."""
        if self._tasks is None:
            self._tasks = self._make_tasks()
        return list(self._tasks)

    def _make_tasks(self) -> list[Task]:
        from rdkit import Chem, DataStructs

        mols = [_mol(s) for s in self.pool]
        fps = [_morgan().GetFingerprint(m) for m in mols]
        patterns = [(name, Chem.MolFromSmarts(smarts)) for name, smarts in THEMES]
        rng = random.Random(self.pool_seed)
        seeds = rng.sample(range(len(self.pool)), min(self.n_tasks, len(self.pool)))
        tasks = []
        for k, seed in enumerate(seeds):
            sims = DataStructs.BulkTanimotoSimilarity(fps[seed], fps)
            order = sorted(range(len(self.pool)), key=lambda j: (-sims[j], j))
            chosen = [seed] + [j for j in order if j != seed][: self.shots - 1]
            examples = [self.pool[j] for j in chosen]
            rotated = patterns[k % len(patterns):] + patterns[: k % len(patterns)]
            theme = next((name for name, pat in rotated
                          if all(mols[j].HasSubstructMatch(pat) for j in chosen)), None)
            question = "a new drug-like molecule similar to these examples" + (
                f", with {theme}" if theme else "")
            tasks.append(Task(f"smiles-{k:02d}", question, None,
                              {"examples": examples, "theme": theme}))
        return tasks

    def for_task(self, task: Task) -> SmilesDomain:
        """This domain with ``task``'s examples in its prompt."""
        bound = copy.copy(self)
        examples = task.meta.get("examples")
        bound.examples = tuple(_check_examples(
            examples if examples is not None else self.examples_for(task.question)))
        return bound

    # -- scoring ---------------------------------------------------------------
    def evaluate(self, output: str | None, task: Task) -> Evaluation:
        """valid = RDKit sanitises the (cleaned) output; correct = valid; score = QED.
        details: canonical SMILES, qed, novel (not one of the task's examples), similarity
        (largest Tanimoto to an example), heavy_atoms; or the reason it is invalid."""
        smiles = self.clean(output)
        if not smiles:
            return Evaluation(False, False, 0.0, {"reason": "no output"})
        if any(c.isspace() for c in smiles):
            return Evaluation(False, False, 0.0, {"reason": "not a single SMILES string"})
        mol = _mol(smiles)
        if mol is None:
            return Evaluation(False, False, 0.0, {"reason": "RDKit cannot sanitise it"})
        from rdkit import Chem, DataStructs

        canonical = Chem.MolToSmiles(mol)
        qed = _qed(mol)
        example_mols = [m for m in (_mol(s) for s in task.meta.get("examples", ())) if m]
        known = {Chem.MolToSmiles(m) for m in example_mols}
        fp = _morgan().GetFingerprint(mol)
        similarity = max(DataStructs.BulkTanimotoSimilarity(
            fp, [_morgan().GetFingerprint(m) for m in example_mols]), default=0.0)
        return Evaluation(True, True, qed if qed is not None else 0.0, {
            "canonical": canonical, "qed": qed, "novel": canonical not in known,
            "similarity": round(float(similarity), 4), "heavy_atoms": mol.GetNumHeavyAtoms()})

    @classmethod
    def summarise(cls, outputs: Sequence[str | None],
                  examples: Sequence[str] | None = None) -> dict[str, Any]:
        """Set metrics of several outputs (None = no output): validity (valid / all),
        uniqueness (distinct canonical SMILES / valid), mean_qed (over valid ones; 0.0 when
        none) and, given ``examples``, novelty (valid ones not among them / valid)."""
        outputs = list(outputs)
        canon: list[str] = []
        qeds: list[float] = []
        from rdkit import Chem

        for out in outputs:
            smiles = cls.clean(out) if out is not None else None
            mol = _mol(smiles) if smiles else None
            if mol is not None:
                canon.append(Chem.MolToSmiles(mol))
                qeds.append(_qed(mol) or 0.0)
        n, valid = len(outputs), len(canon)
        summary: dict[str, Any] = {
            "n": n, "valid": valid, "validity": valid / n if n else 0.0,
            "unique": len(set(canon)), "uniqueness": len(set(canon)) / valid if valid else 0.0,
            "mean_qed": sum(qeds) / valid if valid else 0.0}
        if examples is not None:
            known = {Chem.MolToSmiles(m) for m in (_mol(s) for s in examples) if m}
            summary["novelty"] = (sum(c not in known for c in canon) / valid) if valid else 0.0
        return summary

    # -- command line ------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--shots", type=int, default=5,
                            help=f"example molecules in the prompt (1..{MAX_SHOTS}, default 5)")
        parser.add_argument("--pool", default="moses",
                            help="where examples come from: moses (default), nci, or a "
                                 ".smi/.csv file of SMILES")
        parser.add_argument("--pool-seed", type=int, default=0,
                            help="seed of the shipped tasks and of a question's examples")
        parser.add_argument("--n-tasks", type=int, default=30,
                            help="size of the shipped task set (default 30)")
        parser.add_argument("--no-critic", action="store_true",
                            help="no RDKit validity critic (grammar constraint only)")

    @classmethod
    def options_from(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"shots": args.shots, "pool": args.pool, "pool_seed": args.pool_seed,
                "n_tasks": args.n_tasks, "critic": not args.no_critic}

    def __repr__(self) -> str:
        return (f"SmilesDomain(shots={self.shots}, pool={str(self.pool_name)!r}, "
                f"pool_seed={self.pool_seed}, n_tasks={self.n_tasks}, "
                f"critic={self.critic is not None})")


def _qed(mol) -> float | None:
    """QED of a sanitised molecule, or None where RDKit cannot compute it."""
    from rdkit.Chem import QED

    try:
        return round(float(QED.qed(mol)), 4)
    except (ValueError, RuntimeError):
        return None


def _check_examples(examples: Any) -> list[str]:
    if (not isinstance(examples, (list, tuple)) or not examples
            or not all(isinstance(s, str) and s.strip() for s in examples)):
        raise ValueError(f"examples must be a non-empty list of SMILES strings, got {examples!r}")
    return list(examples)
