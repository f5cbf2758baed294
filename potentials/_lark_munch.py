"""When does Python's ``re.match`` of a terminal return its *longest* match?

Lark lexes with ``re.match`` (backtracking, greedy), not with longest match.  Where
the two agree for a terminal T, a lexeme read as T can only end where no longer
prefix of the rest of the text is in L(T); the character-level engine then adds
(T, state) to the lexer constraints when it ends a T lexeme, which removes the
split readings ("SELECTx" as SELECT + x, a run of spaces as several lexemes, a
newline token cut before its indentation) that make prefix() loose.

Sufficient condition used here (and checked against ``re`` in the tests):
  1. the regex is one-unambiguous: its Glushkov automaton is deterministic (the
     char sets of first(E), and of follow(p) for every position p, are pairwise
     disjoint), so every prefix is matched along one path of positions; and
  2. at every choice point backtracking tries to consume before it stops: repeats
     are greedy and a nullable alternative of ``|`` comes last.
Then backtracking follows the unique path as far as the text allows and returns
the last point on it where the pattern may end: the longest match.  Anything
else (lazy or possessive repeats, lookaround, anchors, back-references, counted
repeats over 32) is reported unsafe, which only keeps the looser reading.
"""

from __future__ import annotations

import re

try:  # Python ≥ 3.11
    from re import _constants as _c
    from re import _parser as _sre
except ImportError:  # pragma: no cover - older interpreters
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

_MAX_COUNT = 32
_ASCII = [chr(i) for i in range(128)]
CharSet = tuple[frozenset[str], bool]  # (ASCII members, may match a non-ASCII character)


class _Unsafe(Exception):
    pass


def _char_set(op, av, flags: int) -> CharSet:
    """An over-approximation of the characters one sre item matches."""
    text = _item_regex(op, av)
    rx = re.compile(text, flags & (re.IGNORECASE | re.DOTALL | re.ASCII))
    members = frozenset(c for c in _ASCII if rx.fullmatch(c))
    if op is _c.LITERAL:
        wide = av >= 128
    elif op is _c.IN:
        wide = any(o is _c.NEGATE or o is _c.CATEGORY or (o is _c.RANGE and a[1] >= 128)
                   or (o is _c.LITERAL and a >= 128) for o, a in av)
    else:  # ANY, NOT_LITERAL, CATEGORY
        wide = True
    if flags & re.IGNORECASE and any(c.isalpha() for c in members):
        wide = True  # case folding reaches e.g. U+212A KELVIN SIGN from 'k'
    return members, wide


def _item_regex(op, av) -> str:
    if op is _c.LITERAL:
        return re.escape(chr(av))
    if op is _c.NOT_LITERAL:
        return "[^" + re.escape(chr(av)) + "]"
    if op is _c.ANY:
        return "."
    if op is _c.CATEGORY:
        return {_c.CATEGORY_DIGIT: r"\d", _c.CATEGORY_NOT_DIGIT: r"\D",
                _c.CATEGORY_SPACE: r"\s", _c.CATEGORY_NOT_SPACE: r"\S",
                _c.CATEGORY_WORD: r"\w", _c.CATEGORY_NOT_WORD: r"\W"}[av]
    parts = []
    for o, a in av:
        if o is _c.NEGATE:
            parts.insert(0, "^")
        elif o is _c.LITERAL:
            parts.append(re.escape(chr(a)))
        elif o is _c.RANGE:
            parts.append(re.escape(chr(a[0])) + "-" + re.escape(chr(a[1])))
        elif o is _c.CATEGORY:
            parts.append(_item_regex(_c.CATEGORY, a))
        else:
            raise _Unsafe
    return "[" + "".join(parts) + "]"


def _overlap(a: CharSet, b: CharSet) -> bool:
    return bool(a[0] & b[0]) or (a[1] and b[1])


class _Glushkov:
    """Positions, nullable/first/last and follow sets of an sre parse tree."""

    def __init__(self) -> None:
        self.sets: list[CharSet] = []
        self.follow: list[set[int]] = []

    def _pos(self, cs: CharSet) -> int:
        self.sets.append(cs)
        self.follow.append(set())
        return len(self.sets) - 1

    def seq(self, items: list, flags: int) -> tuple[bool, set[int], set[int]]:
        nullable, first, last = True, set(), set()
        for op, av in items:
            n2, f2, l2 = self.node(op, av, flags)
            for p in last:
                self.follow[p] |= f2
            if nullable:
                first |= f2
            last = (last | l2) if n2 else set(l2)
            nullable = nullable and n2
        return nullable, first, last

    def node(self, op, av, flags: int) -> tuple[bool, set[int], set[int]]:
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN, _c.CATEGORY):
            p = self._pos(_char_set(op, av, flags))
            return False, {p}, {p}
        if op is _c.SUBPATTERN:
            _group, add, remove, sub = av
            return self.seq(list(sub), (flags | add) & ~remove)
        if op is _c.BRANCH:
            nullable, first, last = False, set(), set()
            branches = av[1]
            for k, b in enumerate(branches):
                n2, f2, l2 = self.seq(list(b), flags)
                if n2 and k != len(branches) - 1:
                    raise _Unsafe  # backtracking would stop before trying to consume
                nullable, first, last = nullable or n2, first | f2, last | l2
            return nullable, first, last
        if op is _c.MAX_REPEAT:
            lo, hi, sub = av
            if lo > _MAX_COUNT or (hi is not _c.MAXREPEAT and hi > _MAX_COUNT):
                raise _Unsafe
            items = [(_c.SUBPATTERN, (None, 0, 0, sub))] * lo
            if hi is _c.MAXREPEAT:
                out = self.seq(items, flags)
                n2, f2, l2 = self.seq(list(sub), flags)
                for p in l2:
                    self.follow[p] |= f2
                star = (True, f2, l2)
                return self._concat(out, star)
            out = self.seq(items, flags)
            opt: tuple[bool, set[int], set[int]] = (True, set(), set())
            for _ in range(hi - lo):  # x? x? ... nested from the right: (x(x(x)?)?)?
                n2, f2, l2 = self.seq(list(sub), flags)
                opt = self._concat((n2, f2, l2), opt)
                opt = (True, opt[1], opt[2])
            return self._concat(out, opt)
        raise _Unsafe  # lazy/possessive repeats, assertions, anchors, back-references, ...

    def _concat(self, a, b):
        n1, f1, l1 = a
        n2, f2, l2 = b
        for p in l1:
            self.follow[p] |= f2
        return n1 and n2, f1 | f2 if n1 else set(f1), l1 | l2 if n2 else set(l2)


def _deterministic(sets: list[CharSet], group: set[int]) -> bool:
    members = sorted(group)
    return not any(_overlap(sets[a], sets[b])
                   for i, a in enumerate(members) for b in members[i + 1:])


def longest_match_safe(pattern: str, flags: int = 0) -> bool:
    """True when ``re.match(pattern, s)`` is the longest prefix of s in L(pattern), for all s."""
    try:
        parsed = _sre.parse(pattern, flags)
        g = _Glushkov()
        _nullable, first, _last = g.seq(list(parsed), parsed.state.flags)
    except (_Unsafe, re.error, KeyError):
        return False
    return _deterministic(g.sets, first) and all(_deterministic(g.sets, f) for f in g.follow)
