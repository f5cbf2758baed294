"""The characters an unfinished UTF-8 sequence can still become, up to a grammar's eyes.

A token can end inside a multi-byte character (byte-level BPE has every lead byte as a
token).  After such a token the text is x and ``held`` bytes wait for the rest of the
character; the grammar can go on iff some character c whose encoding starts with
``held`` keeps x·c viable:

    prefix_held(x, held) = max over c ∈ R(held) of prefix(x·c),

where R(held) is an interval of code points (``char_range``).  A grammar's lexer reads a
character only through the set of its regex atoms that match it, so one representative
per distinct set ("row") decides for the whole interval (``HeldChars.reps``).

Only intervals of at most ``MAX_HELD_RANGE`` characters are narrowed: every 2-byte lead,
every 3-byte lead (4,096 characters) and every longer prefix of a 4-byte character.  A
lone 4-byte lead byte (F0–F4: 65k–262k characters each) keeps the bound prefix(x), so the
cost of a grammar's rows stays a few milliseconds per lead byte.  The vocabulary trie
(``vocab_trie``) and the byte trie's reference walk (``smc.token_trie``) use the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_HELD_RANGE = 4096


def char_range(held: bytes) -> range | None:
    """Code points whose UTF-8 encoding starts with ``held`` (a proper, non-empty prefix
    of a well-formed encoding), or None if no character starts so."""
    if not held:
        return None
    lead = held[0]
    if 0xC2 <= lead <= 0xDF:
        width, lo, hi = 2, 0x80, 0x7FF
    elif 0xE0 <= lead <= 0xEF:
        width, lo, hi = 3, 0x800, 0xFFFF
    elif 0xF0 <= lead <= 0xF4:
        width, lo, hi = 4, 0x10000, 0x10FFFF
    else:
        return None
    if len(held) >= width or any(not 0x80 <= b <= 0xBF for b in held[1:]):
        return None
    rest = width - len(held)
    start = int.from_bytes(held + b"\x80" * rest, "big")   # smallest / largest encodings
    stop = int.from_bytes(held + b"\xbf" * rest, "big")
    first, last = _decode_int(start, width), _decode_int(stop, width)
    first, last = max(first, lo), min(last, hi)
    if width == 3 and 0xD800 <= first and last <= 0xDFFF:
        return None                                       # ED A0..BF: surrogates only
    if width == 3 and first <= 0xD800 <= last:             # ED: stop before the surrogates
        last = min(last, 0xD7FF)
    return range(first, last + 1) if first <= last else None


def _decode_int(value: int, width: int) -> int:
    """The code point of a ``width``-byte UTF-8 pattern given as a big-endian integer
    (overlong or out-of-range patterns decode to values the caller clamps)."""
    data = value.to_bytes(width, "big")
    cp = data[0] & (0x7F >> width)
    for b in data[1:]:
        cp = (cp << 6) | (b & 0x3F)
    return cp


def narrows(held: bytes) -> bool:
    """Whether ``held`` is checked character by character (its range is small enough)."""
    r = char_range(held)
    return r is not None and len(r) <= MAX_HELD_RANGE


class HeldChars:
    """Representatives of the characters each held prefix can become, for one set of
    regex atoms (one-character patterns)."""

    def __init__(self, atoms: Sequence[re.Pattern]) -> None:
        self._atoms = list(atoms)
        self._runs = [re.compile(f"(?:{a.pattern})+", a.flags) for a in self._atoms]
        self._reps: dict[bytes, tuple[str, ...] | None] = {}

    def reps(self, held: bytes) -> tuple[str, ...] | None:
        """One character per distinct atom row in R(held), in code point order; None when
        ``held`` is not narrowed (``narrows``), ``()`` when no character starts so."""
        got = self._reps.get(held, False)
        if got is not False:
            return got
        r = char_range(held)
        if r is None:
            out: tuple[str, ...] | None = ()
        elif len(r) > MAX_HELD_RANGE:
            out = None
        else:
            text = "".join(map(chr, r))
            cuts = {0}
            for run in self._runs:                     # rows change only at run edges
                for m in run.finditer(text):
                    cuts.add(m.start())
                    cuts.add(m.end())
            seen: dict[tuple[bool, ...], str] = {}
            for i in sorted(c for c in cuts if c < len(text)):
                ch = text[i]
                seen.setdefault(tuple(a.fullmatch(ch) is not None for a in self._atoms), ch)
            out = tuple(seen.values())
        self._reps[held] = out
        return out
