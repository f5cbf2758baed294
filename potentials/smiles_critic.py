"""Partial-SMILES validity: a sound prefix bound for "RDKit can sanitise some completion".

``complete(x) = 0`` when RDKit parses and sanitises ``x`` (a bare SMILES, no whitespace),
else −inf.  ``prefix(x) = −inf`` only when *no* completion of ``x`` can sanitise, proved
by facts that adding characters can never undo:

* a ring closure that bonds an atom to itself (``C11``) or to an atom it is already
  bonded to (``C1C1``, ``C12CC12``) — RDKit rejects both when it reads the SMILES;
* an atom whose valence so far exceeds the most RDKit accepts for its element and
  charge (``C(C)(C)(C)(C)C``, ``CO(C)C``, ``[NH4+]C``).  "Valence so far" is a lower
  bound of the final one: bracket H count plus the bonds already written to atoms that
  are surely non-metals, aromatic bonds counted as 1 (a Kekulé bond is 1 or 2).  Bonds
  to metals (and to ``*``, and bonds whose partner is not written yet) count 0, because
  RDKit's organometallic clean-up turns such bonds into dative ones (``C(C)(C)(C)(C)[Fe]``
  sanitises); ring bonds count their smaller bond symbol (RDKit lets one end's symbol win).
  The maxima are probed from RDKit itself, raised where RDKit's clean-up rescues neutral
  hypervalent atoms (nitro/N-oxide/azide N: 5; Cl, Br, I oxyacids: 7).

Everything else (open rings, unclosed branches, aromaticity, kekulisation, aromatic atoms
outside rings) can still change and is judged by ``complete`` at the end.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache

from potentials.base import NEG_INF, Potential

# Atoms whose valence is checked, and the only partners whose bonds count: elements RDKit
# never treats as metals (so no bond to them can become dative).
NONMETALS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
# Neutral atoms that RDKit's clean-up rescues from a valence above the probed maximum
# (N(=O)=O -> [N+](=O)[O-], O=n1ccccc1, N=N#N; O=Cl(=O)(=O)O -> charge-separated).
_RESCUED = {"N": 5, "Cl": 7, "Br": 7, "I": 7}
_UNLIMITED = 1 << 30
_PROBE_CAP = 12

_ORGANIC = re.compile(r"Cl|Br|[BCNOPSFIbcnops*]")
_BRACKET = re.compile(
    r"\[(?P<iso>\d{1,3})?(?P<sym>[A-Z][a-z]?|se|as|te|[bcnops]|\*)"
    r"(?P<chiral>@(?:@|TH[12]|AL[12]|SP[123]|TB\d{1,2}|OH\d{1,2})?)?"
    r"(?P<h>H\d?)?(?P<charge>\+\+|--|[+-]\d{0,2})?(?::\d+)?\]")
_RING = re.compile(r"%\d\d|\d")
_BOND_ORDER = {"-": 1, "/": 1, "\\": 1, ":": 1, "=": 2, "#": 3, "$": 4}
_AROMATIC_SYMBOLS = {"b": "B", "c": "C", "n": "N", "o": "O", "p": "P", "s": "S",
                     "se": "Se", "as": "As", "te": "Te"}


@dataclass
class _Atom:
    element: str            # "C", "Cl", "Se", "*" (aromatic symbols are upper-cased)
    charge: int = 0
    hcount: int = 0         # bracket H count (organic-subset atoms: implicit, 0 here)
    aromatic: bool = False
    neighbours: set[int] = field(default_factory=set)
    valence: int = 0        # lower bound: hcount + orders of bonds to surely non-metals


@dataclass
class Scan:
    """What a SMILES prefix has fixed: atoms, and the first provable error (or None)."""

    atoms: list[_Atom]
    error: str | None = None


@contextmanager
def quiet():
    """Silence RDKit's error log (it prints every rejected SMILES) inside the block."""
    from rdkit.rdBase import BlockLogs

    block = BlockLogs()
    try:
        yield
    finally:
        del block


def _charge(text: str | None) -> int:
    if not text:
        return 0
    sign = 1 if text[0] == "+" else -1
    if len(text) == 2 and text[1] in "+-":
        return 2 * sign
    return sign * (int(text[1:]) if len(text) > 1 else 1)


def _element_symbol(sym: str) -> str | None:
    """The element of a bracket symbol, or None when it is not one (e.g. ``Xx``)."""
    if sym in _AROMATIC_SYMBOLS:
        return _AROMATIC_SYMBOLS[sym]
    if sym == "*":
        return "*"
    return sym if _atomic_number(sym) > 0 else None


@cache
def _atomic_number(symbol: str) -> int:
    from rdkit import Chem

    try:
        return int(Chem.GetPeriodicTable().GetAtomicNumber(symbol))
    except RuntimeError:
        return 0


def _charge_text(charge: int) -> str:
    return "" if charge == 0 else ("+" if charge > 0 else "-") + str(abs(charge))


@cache
def max_valence(element: str, charge: int) -> int:
    """The largest total bond order (bracket H included) RDKit accepts on ``element`` with
    ``charge`` next to non-metal neighbours, raised to the clean-up rescues above; a large
    number when RDKit sets no limit."""
    from rdkit import Chem

    best = -1
    with quiet():
        for k in range(_PROBE_CAP + 1):
            smi = f"[{element}{_charge_text(charge)}]" + "(C)" * k
            if Chem.MolFromSmiles(smi) is None:
                break
            best = k
        else:
            return _UNLIMITED
    if charge == 0 and element in _RESCUED:
        best = max(best, _RESCUED[element])
    return best


def scan(text: str) -> Scan | None:
    """Read ``text`` as a SMILES prefix; None when it is not one this reader understands
    (then nothing is claimed).  A trailing half-written token (``[C@``, ``%1``, a bond
    symbol) is ignored: it fixes nothing yet.  Reading stops at the first provable error,
    which every extension of ``text`` repeats at the same place: once dead, always dead."""
    atoms: list[_Atom] = []
    stack: list[int | None] = []
    prev: int | None = None
    bond: str | None = None
    rings: dict[str, tuple[int, str | None]] = {}
    i, n = 0, len(text)

    def add_bond(a: int, b: int, order: int) -> str | None:
        atoms[a].neighbours.add(b)
        atoms[b].neighbours.add(a)
        if atoms[b].element in NONMETALS:
            atoms[a].valence += order
        if atoms[a].element in NONMETALS:
            atoms[b].valence += order
        return _valence_error(atoms, a) or _valence_error(atoms, b)

    while i < n:
        ch = text[i]
        if ch == "[":
            m = _BRACKET.match(text, i)
            if m is None:
                if "]" in text[i:]:
                    return None
                break                                      # an unfinished bracket atom
            element = _element_symbol(m.group("sym"))
            if element is None:
                return None
            h = m.group("h")
            atom = _Atom(element, _charge(m.group("charge")),
                         (int(h[1:]) if len(h) > 1 else 1) if h else 0,
                         m.group("sym").islower())
            atom.valence = atom.hcount
            if (error := _valence_error([*atoms, atom], len(atoms))) is not None:
                return Scan([*atoms, atom], error)
            end = m.end()
        elif (m := _ORGANIC.match(text, i)) is not None:
            sym = m.group()
            atom = _Atom(_AROMATIC_SYMBOLS.get(sym, sym), aromatic=sym.islower())
            end = m.end()
        else:
            atom = None
        if atom is not None:
            atoms.append(atom)
            new = len(atoms) - 1
            if prev is not None:   # aromatic or unwritten bonds are at least single
                error = add_bond(prev, new, _BOND_ORDER[bond] if bond else 1)
                if error is not None:
                    return Scan(atoms, error)
            prev, bond, i = new, None, end
            continue
        if ch in _BOND_ORDER:
            if bond is not None or prev is None:
                return None
            bond, i = ch, i + 1
            continue
        if ch == "(":
            if prev is None or bond is not None:
                return None
            stack.append(prev)
            i += 1
            continue
        if ch == ")":
            if not stack or bond is not None:
                return None
            prev = stack.pop()
            i += 1
            continue
        if ch == ".":
            if bond is not None:
                return None
            prev, i = None, i + 1
            continue
        if ch.isdigit() or ch == "%":
            m = _RING.match(text, i)
            if m is None:
                if ch == "%" and i + 3 > n and all(c.isdigit() for c in text[i + 1:]):
                    break                                  # a half-written %nn at the end
                return None
            if prev is None:
                return None
            label = m.group()
            if label in rings:
                other, other_bond = rings.pop(label)
                if other == prev:
                    return Scan(atoms, f"ring bond {label} closes on the atom that opened it")
                if prev in atoms[other].neighbours:
                    return Scan(atoms, f"ring bond {label} doubles an existing bond")
                orders = [_BOND_ORDER[b] for b in (other_bond, bond) if b]
                error = add_bond(other, prev, min(orders) if orders else 1)
                if error is not None:
                    return Scan(atoms, error)
            else:
                rings[label] = (prev, bond)
            bond, i = None, m.end()
            continue
        return None
    return Scan(atoms)


def _valence_error(atoms: list[_Atom], k: int) -> str | None:
    """The error of atom ``k`` when its valence so far exceeds RDKit's maximum."""
    atom = atoms[k]
    if atom.element not in NONMETALS:
        return None
    limit = max_valence(atom.element, atom.charge)
    if atom.valence <= limit:
        return None
    return (f"atom {k + 1} ({atom.element}{_charge_text(atom.charge)}) has valence at least "
            f"{atom.valence}, RDKit allows at most {limit}")


def sanitises(smiles: str) -> bool:
    """Whether RDKit parses and sanitises ``smiles`` as a bare SMILES (no whitespace)."""
    if not smiles or any(c.isspace() for c in smiles):
        return False
    from rdkit import Chem

    with quiet():
        return Chem.MolFromSmiles(smiles) is not None


class SmilesValidity(Potential):
    """Boolean critic: prefix −inf only when no completion sanitises (see module doc);
    complete 0 iff RDKit sanitises.  Verdicts are cached (LRU of ``cache_size`` texts)."""

    def __init__(self, cache_size: int = 65536) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.cache_size = cache_size
        self._prefix: OrderedDict[str, float] = OrderedDict()
        self._complete: OrderedDict[str, float] = OrderedDict()

    def explain(self, text: str) -> str | None:
        """Why ``text`` cannot be completed to a valid molecule, or None if it might be."""
        s = scan(text)
        return None if s is None else s.error

    def prefix(self, text: str) -> float:
        text = text.removesuffix("\n")  # an answer line may end with its newline
        return self._cached(self._prefix, text,
                            lambda t: NEG_INF if self.explain(t) else 0.0)

    def complete(self, text: str) -> float:
        text = text.removesuffix("\n")
        return self._cached(self._complete, text,
                            lambda t: 0.0 if sanitises(t) else NEG_INF)

    def evaluate_at(self, text: str) -> bool:
        """Every step except inside a bracket atom, where nothing new is fixed."""
        return text.rfind("[") <= text.rfind("]")

    def _cached(self, cache: OrderedDict[str, float], text: str, fn) -> float:
        if text in cache:
            cache.move_to_end(text)
            return cache[text]
        value = fn(text)
        cache[text] = value
        if len(cache) > self.cache_size:
            cache.popitem(last=False)
        return value

    def __repr__(self) -> str:
        return "SmilesValidity()"
