"""Python regular expressions as lazily determinised automata over characters.

For a pattern P the automaton accepts L ⊇ {s : re.fullmatch(P, s)}, with equality
(``exact``) unless P holds a construct whose meaning is not regular or depends on
the surrounding text: assertions (lookaround, ``^ $ \\b``) are dropped, back-references
read as ``.*``, atomic groups / possessive repeats as ordinary ones, and huge counted
repeats are widened.  Each widening only enlarges L, so prefix tests stay sound.

States are ints; ``DEAD`` (−1) means no continuation can ever be accepted, i.e. the
DFA states kept are exactly the co-reachable ones (``s`` live ⇔ ∃w: s·w ∈ L).
Transitions are computed on first use per (state, character) and memoised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

try:  # Python ≥ 3.11
    from re import _constants as _c
    from re import _parser as _sre
except ImportError:  # pragma: no cover - older interpreters
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

DEAD = -1
_ATOM_FLAGS = re.IGNORECASE | re.DOTALL | re.ASCII | re.UNICODE
_MAX_COUNT = 200  # counted repeats beyond this are widened (exact=False)
_CATEGORIES = {
    _c.CATEGORY_DIGIT: r"\d", _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s", _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w", _c.CATEGORY_NOT_WORD: r"\W",
}


def _esc(code: int) -> str:
    """A code point as an escape valid both inside and outside a character class."""
    return f"\\U{code:08x}" if code > 0xFFFF else f"\\u{code:04x}"


def _class_text(items: list) -> str:
    """Rebuild the source of a parsed character class ``[...]``."""
    parts: list[str] = []
    for op, av in items:
        if op is _c.NEGATE:
            parts.insert(0, "^")
        elif op is _c.LITERAL:
            parts.append(_esc(av))
        elif op is _c.RANGE:
            parts.append(_esc(av[0]) + "-" + _esc(av[1]))
        elif op is _c.CATEGORY:
            parts.append(_CATEGORIES[av])
        else:  # pragma: no cover - not produced by the parser
            raise ValueError(f"unsupported class item {op}")
    return "[" + "".join(parts) + "]"


class CharAutomaton:
    """Lazy DFA of one regular expression; see the module docstring for its language."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.exact = True
        parsed = _sre.parse(pattern, flags)
        self._eps: list[list[int]] = []
        self._edges: list[list[tuple[int, int]]] = []
        self._atoms: list[re.Pattern[str]] = []
        self._atom_ids: dict[tuple[str, int], int] = {}
        self._atom_memo: list[dict[str, bool]] = []
        start, self._accept = self._build(list(parsed), parsed.state.flags)
        self._live = self._co_reachable()
        self._sets: list[frozenset[int]] = []
        self._index: dict[frozenset[int], int] = {}
        self.final: list[bool] = []
        self._trans: list[dict[str, int]] = []
        self.start = self._intern(self._closure({start}))

    # ---- Thompson construction over the sre parse tree -------------------------------
    def _new(self) -> int:
        self._eps.append([])
        self._edges.append([])
        return len(self._eps) - 1

    def _atom(self, text: str, flags: int) -> int:
        key = (text, flags & _ATOM_FLAGS)
        aid = self._atom_ids.get(key)
        if aid is None:
            aid = len(self._atoms)
            self._atoms.append(re.compile(text, key[1]))
            self._atom_memo.append({})
            self._atom_ids[key] = aid
        return aid

    def _char(self, text: str, flags: int) -> tuple[int, int]:
        s, e = self._new(), self._new()
        self._edges[s].append((self._atom(text, flags), e))
        return s, e

    def _build(self, seq: list, flags: int) -> tuple[int, int]:
        start = cur = self._new()
        for op, av in seq:
            s, e = self._node(op, av, flags)
            self._eps[cur].append(s)
            cur = e
        return start, cur

    def _node(self, op, av, flags: int) -> tuple[int, int]:
        if op is _c.LITERAL:
            return self._char(_esc(av), flags)
        if op is _c.NOT_LITERAL:
            return self._char("[^" + _esc(av) + "]", flags)
        if op is _c.ANY:
            return self._char(".", flags)
        if op is _c.IN:
            return self._char(_class_text(av), flags)
        if op is _c.CATEGORY:
            return self._char(_CATEGORIES[av], flags)
        if op is _c.BRANCH:
            return self._alternatives([list(b) for b in av[1]], flags)
        if op is _c.SUBPATTERN:
            _group, add, remove, sub = av
            return self._build(list(sub), (flags | add) & ~remove)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(_c, "POSSESSIVE_REPEAT", None):
            if op not in (_c.MAX_REPEAT, _c.MIN_REPEAT):
                self.exact = False
            lo, hi, sub = av
            return self._repeat(list(sub), lo, hi, flags)
        if op is getattr(_c, "ATOMIC_GROUP", None):
            self.exact = False
            return self._build(list(av), flags)
        if op is _c.GROUPREF_EXISTS:
            self.exact = False
            _group, yes, no = av
            return self._alternatives([list(yes), list(no) if no is not None else []], flags)
        if op is _c.GROUPREF:
            self.exact = False
            return self._repeat([(_c.ANY, None)], 0, _c.MAXREPEAT, flags | re.DOTALL)
        # AT (anchors, \b), ASSERT, ASSERT_NOT, anything else zero-width: dropped.
        self.exact = False
        s = self._new()
        return s, s

    def _alternatives(self, branches: list[list], flags: int) -> tuple[int, int]:
        s, e = self._new(), self._new()
        for b in branches:
            bs, be = self._build(b, flags)
            self._eps[s].append(bs)
            self._eps[be].append(e)
        return s, e

    def _repeat(self, sub: list, lo: int, hi: int, flags: int) -> tuple[int, int]:
        if lo > _MAX_COUNT or (hi is not _c.MAXREPEAT and hi > _MAX_COUNT):
            self.exact = False  # widen: fewer mandatory copies, no upper bound
            lo, hi = min(lo, _MAX_COUNT), _c.MAXREPEAT
        start = cur = self._new()
        for _ in range(lo):
            s, e = self._build(sub, flags)
            self._eps[cur].append(s)
            cur = e
        if hi is _c.MAXREPEAT:
            s, e = self._build(sub, flags)
            self._eps[cur].append(s)
            self._eps[e].append(cur)
            return start, cur
        end = self._new()
        for _ in range(hi - lo):
            self._eps[cur].append(end)
            s, e = self._build(sub, flags)
            self._eps[cur].append(s)
            cur = e
        self._eps[cur].append(end)
        return start, end

    # ---- determinisation -------------------------------------------------------------
    def _co_reachable(self) -> set[int]:
        back: list[list[int]] = [[] for _ in self._eps]
        for s, outs in enumerate(self._eps):
            for t in outs:
                back[t].append(s)
        for s, outs in enumerate(self._edges):
            for _a, t in outs:
                back[t].append(s)
        live, todo = {self._accept}, [self._accept]
        while todo:
            for s in back[todo.pop()]:
                if s not in live:
                    live.add(s)
                    todo.append(s)
        return live

    def _closure(self, states: set[int]) -> frozenset[int]:
        seen, todo = set(states), list(states)
        while todo:
            for t in self._eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        live = self._live
        return frozenset(s for s in seen if s in live and (self._edges[s] or s == self._accept))

    def _intern(self, states: frozenset[int]) -> int:
        if not states:
            return DEAD
        sid = self._index.get(states)
        if sid is None:
            sid = len(self._sets)
            self._sets.append(states)
            self._index[states] = sid
            self.final.append(self._accept in states)
            self._trans.append({})
        return sid

    def _matches(self, aid: int, ch: str) -> bool:
        memo = self._atom_memo[aid]
        hit = memo.get(ch)
        if hit is None:
            hit = memo[ch] = self._atoms[aid].fullmatch(ch) is not None
        return hit

    def step(self, state: int, ch: str) -> int:
        """δ(state, ch), or DEAD."""
        if state == DEAD:
            return DEAD
        trans = self._trans[state]
        nxt = trans.get(ch)
        if nxt is None:
            targets = {t for s in self._sets[state] for a, t in self._edges[s]
                       if self._matches(a, ch)}
            nxt = trans[ch] = self._intern(self._closure(targets)) if targets else DEAD
        return nxt

    def tabulate(self, chars: Sequence[str], limit: int = 4096) -> None:
        """Determinise ahead: δ(q, ch) for every ch in ``chars`` and every state q reachable
        on them (at most ``limit`` states; the rest stays lazy)."""
        todo, seen = [self.start], {self.start}
        while todo and len(seen) <= limit:
            state = todo.pop()
            if state == DEAD:
                continue
            for ch in chars:
                nxt = self.step(state, ch)
                if nxt != DEAD and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)

    def run(self, text: str, state: int | None = None) -> int:
        """δ*(state, text) from ``state`` (default: the start state)."""
        state = self.start if state is None else state
        for ch in text:
            state = self.step(state, ch)
            if state == DEAD:
                break
        return state

    def fullmatch(self, text: str) -> bool:
        """Whether ``text`` is in the automaton's language."""
        state = self.run(text)
        return state != DEAD and self.final[state]

    def __repr__(self) -> str:
        return f"CharAutomaton({self.pattern!r}, exact={self.exact})"
