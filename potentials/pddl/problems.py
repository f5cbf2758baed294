"""The 220 blocks-world problems shipped in ``pddlgym`` 0.0.7 (files read, never imported).

They are the ten problem folders of pddlgym whose domain file is the 4-operator blocks
world without a robot argument (``blocks_operator_actions.pddl`` and its identical
copies ``blocks_medium.pddl``, ``generated_blocks.pddl``, ``manyblocksnopiles.pddl``,
``manyblockssmallpiles.pddl``): 20 + 50 + 50 + 50 + 50 problems of 2 to 152 blocks.  A
problem's id is ``FOLDER/problemN`` (e.g. ``generated_blocks/problem13``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

FAMILIES = (
    "blocks_operator_actions", "blocks_operator_actions_test",
    "generated_blocks", "generated_blocks_test",
    "blocks_medium", "blocks_medium_test",
    "manyblocksnopiles", "manyblocksnopiles_test",
    "manyblockssmallpiles", "manyblockssmallpiles_test",
)
INSTALL_HINT = "pip install --no-deps pddlgym==0.0.7"


@dataclass(frozen=True)
class ProblemFile:
    id: str                 # FOLDER/problemN
    problem: Path
    domain: Path


def pddlgym_dir() -> Path:
    """pddlgym's ``pddl`` folder, located without importing pddlgym (it imports gym)."""
    spec = importlib.util.find_spec("pddlgym")
    if spec is None or spec.origin is None:
        raise ValueError(f"the pddl domain reads its problems from the pddlgym package, "
                         f"which is not installed: {INSTALL_HINT}")
    folder = Path(spec.origin).parent / "pddl"
    if not folder.is_dir():
        raise ValueError(f"pddlgym at {folder.parent} has no pddl/ folder; {INSTALL_HINT}")
    return folder


def domain_file_for(problem: Path) -> Path:
    """pddlgym's layout: ``X/problemN.pddl`` and ``X_test/problemN.pddl`` use ``X.pddl``."""
    folder = problem.resolve().parent
    return folder.parent / (folder.name.removesuffix("_test") + ".pddl")


def problem_files() -> list[ProblemFile]:
    """The 220 problems, in folder order then problem number."""
    root = pddlgym_dir()
    out = []
    for fam in FAMILIES:
        files = sorted((root / fam).glob("problem*.pddl"),
                       key=lambda p: int(p.stem.removeprefix("problem") or 0))
        if not files:
            raise ValueError(f"pddlgym folder {root / fam} has no problems; {INSTALL_HINT}")
        dom = root / (fam.removesuffix("_test") + ".pddl")
        out += [ProblemFile(f"{fam}/{f.stem}", f, dom) for f in files]
    return out


def resolve(name_or_path: str | Path) -> ProblemFile:
    """A shipped problem by id (``generated_blocks/problem13``) or a problem file path
    (its domain found by pddlgym's layout); ValueError if neither."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".pddl" or path.is_file():
        if not path.is_file():
            raise ValueError(f"problem file {text} does not exist")
        folder = path.resolve().parent
        shipped = folder.name in FAMILIES and folder.parent == pddlgym_dir().resolve()
        return ProblemFile(f"{folder.name}/{path.stem}" if shipped else path.stem, path,
                           domain_file_for(path))
    key = text.removesuffix(".pddl")
    for pf in problem_files():
        if pf.id == key:
            return pf
    raise ValueError(f"unknown pddl problem {text!r}: give a .pddl file or an id such as "
                     f"'generated_blocks/problem13' (smc-decode pddl --list-tasks lists them)")
