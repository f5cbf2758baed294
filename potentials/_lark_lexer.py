"""Lark's contextual lexer, read one character at a time.

In parser state S Lark's lexer tries the terminals T₁, T₂, … of S (its own order:
priority, then width) as one alternation ``re.match``: the token at position p is
the first Tᵢ matching *some* prefix of the rest of the text; a regex terminal whose
value equals one of its ``unless`` keywords is re-typed to that keyword.

A lexeme state is the set of (terminal, automaton state) pairs still alive for the
pending lexeme.  Two consequences of "first Tᵢ that matches" are enforced exactly
for terminals whose automaton is exact:
* once Tᵢ has matched a prefix of the lexeme, no later Tⱼ (j > i) may end it;
* a lexeme ended as Tⱼ leaves *constraints*: every earlier exact Tᵢ still alive must
  never reach a final state on the characters that follow (else Lark would take Tᵢ).
What stays over-approximated is the *length* Lark's regex picks for the chosen
terminal (all end points where its automaton is final are kept).
"""

from __future__ import annotations

from collections.abc import Sequence

from potentials._lark_regex import DEAD, CharAutomaton

Pairs = tuple[tuple[int, int], ...]  # ((terminal index, automaton state), ...)
_NEW = -2  # ``step_row``: not normalised yet (never a state: DEAD is -1)
Close = tuple[int, Pairs]  # (terminal emitted, constraints it leaves)


class LexContext:
    """The lexer of one parser state, for a set of ``useful`` terminals.

    ``useful`` = terminals the parser accepts exactly in this stack, plus ignored
    ones; a lexeme state is alive iff some useful token can still be completed.
    """

    def __init__(self, autos: Sequence[CharAutomaton], order: Sequence[int],
                 embedded: Sequence[int], unless: dict[int, list[int]],
                 useful: frozenset[int], shared: SharedSteps | None = None) -> None:
        self._autos = autos
        self.lexer = (order, embedded, unless)  # what Lark's lexer here is made of
        self._shared = SharedSteps() if shared is None else shared
        self._gid: list[int] = []  # a state's id in ``shared``
        self._rank = {t: r for r, t in enumerate(order)}
        self._embedded = frozenset(embedded)
        self._unless = unless
        self._useful = useful
        self._states: list[Pairs] = []  # main pairs (Lark's order), then re-typing targets
        self._n_main: list[int] = []  # how many of a state's pairs are main pairs
        self._index: dict[tuple[Pairs, Pairs], int] = {}
        self._trans: list[dict[str, int]] = []
        self._closes: list[list[Close] | None] = []
        self._stepped: dict[tuple[Pairs, Pairs], int] = {}  # stepped pairs -> lexeme state
        first = [(t, autos[t].start) for t in [*order, *embedded] if autos[t].start != DEAD]
        self.init = self._normalise(first)
        if self.init != DEAD:
            self._closes[self.init] = []  # an empty lexeme is never a token

    def _capable(self, t: int, alive: dict[int, int]) -> bool:
        """Whether ending the lexeme as ``t`` may still give a useful token."""
        if t in self._useful:
            return True
        return any(s in self._useful and s in alive for s in self._unless.get(t, ()))

    def _normalise(self, pairs: list[tuple[int, int]],
                   targets: list[tuple[int, int]] | tuple = ()) -> int:
        """Apply the first-match rule, drop what can no longer matter, intern.

        ``targets`` are pairs kept only as ``unless`` re-typing targets: terminals that
        can no longer be Lark's choice themselves (they never return to the main pairs).
        """
        autos, rank = self._autos, self._rank
        main = sorted((p for p in pairs if p[0] in rank), key=lambda p: rank[p[0]])
        for i, (t, d) in enumerate(main):
            if autos[t].exact and autos[t].final[d]:
                main = main[: i + 1]  # later terminals can never be Lark's choice
                break
        alive = dict(pairs)
        alive.update(targets)
        capable = [self._capable(t, alive) for t, _d in main]
        if not any(capable):
            return DEAD
        last = max(i for i, c in enumerate(capable) if c)
        # a terminal that can neither give a useful token nor (being exact) pre-empt a
        # later one has no effect; so has anything after the last capable terminal
        main = [p for p, c in zip(main[: last + 1], capable, strict=False)
                if c or autos[p[0]].exact]
        needed = {s for t, _d in main for s in self._unless.get(t, ())}
        # a re-typing target is kept even when it is one of Lark's main terminals cut off
        # above (e.g. a case-insensitive keyword "if"i that a case-sensitive NAME regex
        # re-types: NAME comes first in Lark's order, matches "if" and is re-typed to IF)
        in_main = {t for t, _d in main}
        side = tuple(sorted((t, d) for t, d in alive.items() if t in needed and t not in in_main))
        key = (tuple(main), side)
        sid = self._index.get(key)
        if sid is None:
            sid = len(self._states)
            self._states.append(key[0] + side)
            self._n_main.append(len(main))
            self._gid.append(self._shared.intern(key[0] + side, len(main)))
            self._index[key] = sid
            self._trans.append({})
            self._closes.append(None)
        return sid

    def step(self, state: int, ch: str) -> int:
        """The lexeme state after appending ``ch``, or DEAD."""
        trans = self._trans[state]
        nxt = trans.get(ch)
        if nxt is None:
            key = self._shared.step(self._autos, self._gid[state], self._states[state],
                                    self._n_main[state], ch)
            if key is None:
                nxt = DEAD
            else:  # characters of one class step the pairs alike: normalise each result once
                nxt = self._stepped.get(key)
                if nxt is None:
                    nxt = self._stepped[key] = self._normalise(list(key[0]), key[1])
            trans[ch] = nxt
        return nxt

    def step_row(self, state: int, chars: tuple[str, ...]) -> list[int]:
        """``step(state, ch)`` for every ch of ``chars``.  The raw steps of a pair set are
        shared by every context whose state has it (``SharedSteps.row``); only the
        normalisation is this context's (tabulating 69 SQL lexers: 641 pair sets for
        5,000 lexeme states)."""
        keys = self._shared.row(self._autos, self._gid[state], self._states[state],
                                self._n_main[state], chars)
        stepped = self._stepped
        out = [DEAD if key is None else stepped.get(key, _NEW) for key in keys]
        for j, nxt in enumerate(out):
            if nxt == _NEW:  # characters of one class step the pairs alike: normalise once
                key = keys[j]
                nxt = stepped.get(key)
                if nxt is None:
                    nxt = stepped[key] = self._normalise(list(key[0]), key[1])
                out[j] = nxt
        self._trans[state].update(zip(chars, out, strict=True))
        return out

    def closes(self, state: int) -> list[Close]:
        """Ways to end the pending lexeme here: (useful terminal Lark emits, constraints)."""
        found = self._closes[state]
        if found is None:
            found = []
            autos, pairs = self._autos, self._states[state]
            alive = dict(pairs)
            for i, (t, d) in enumerate(pairs[: self._n_main[state]]):  # not re-typing targets
                if not autos[t].final[d]:
                    continue
                emit = next((s for s in self._unless.get(t, ())
                             if s in alive and autos[s].final[alive[s]]), t)
                if emit in self._useful:
                    cons = tuple((u, e) for u, e in pairs[:i] if autos[u].exact)
                    if getattr(autos[t], "longest", False):  # re.match takes T's longest run
                        cons = (*cons, (t, d))
                    found.append((emit, cons))
            self._closes[state] = found
        return found


class SharedSteps:
    """Raw steps of lexeme pair sets, shared by every context of one grammar.

    Stepping the (terminal, automaton state) pairs on a character does not depend on
    the context (only normalising the result does), and the same pair sets recur in
    many contexts (e.g. the inside of an identifier): each is stepped once per
    character here.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[Pairs, int], int] = {}
        self._steps: dict[tuple[int, str], tuple[Pairs, Pairs] | None] = {}
        self._rows: dict[tuple[int, tuple[str, ...]], list] = {}

    def intern(self, pairs: Pairs, n_main: int) -> int:
        """Id of a lexeme state's pairs (its first ``n_main`` are main pairs)."""
        return self._ids.setdefault((pairs, n_main), len(self._ids))

    def step(self, autos: Sequence[CharAutomaton], gid: int, pairs: Pairs, n_main: int,
             ch: str) -> tuple[Pairs, Pairs] | None:
        """(main pairs, re-typing targets) alive after ``ch``; None when no main pair is."""
        key = (gid, ch)
        if key in self._steps:
            return self._steps[key]
        main, targets = [], []
        for i, (t, d) in enumerate(pairs):
            d2 = autos[t].step(d, ch)
            if d2 != DEAD:
                (main if i < n_main else targets).append((t, d2))
        got = self._steps[key] = (tuple(main), tuple(targets)) if main else None
        return got

    def row(self, autos: Sequence[CharAutomaton], gid: int, pairs: Pairs, n_main: int,
            chars: tuple[str, ...]) -> list[tuple[Pairs, Pairs] | None]:
        """``step`` on every character of ``chars`` (memoised per pair set and chars)."""
        key = (gid, chars)
        got = self._rows.get(key)
        if got is None:
            got = self._rows[key] = [self.step(autos, gid, pairs, n_main, ch) for ch in chars]
        return got


class Constraints:
    """Sets of (terminal, automaton state) that must never reach a final state.

    State 0 is the empty set; ``step`` returns −1 when a constraint is violated.
    """

    VIOLATED = -1

    def __init__(self, autos: Sequence[CharAutomaton]) -> None:
        self._autos = autos
        self._states: list[Pairs] = [()]
        self._index: dict[Pairs, int] = {(): 0}
        self._trans: list[dict[str, int]] = [{}]
        self._merges: dict[tuple[int, Pairs], int] = {}

    def _intern(self, pairs: Pairs) -> int:
        cid = self._index.get(pairs)
        if cid is None:
            cid = len(self._states)
            self._states.append(pairs)
            self._index[pairs] = cid
            self._trans.append({})
        return cid

    def step(self, cid: int, ch: str) -> int:
        """The constraint set after ``ch``, or VIOLATED."""
        if cid == 0:
            return 0
        trans = self._trans[cid]
        nxt = trans.get(ch)
        if nxt is None:
            kept = []
            for t, d in self._states[cid]:
                d2 = self._autos[t].step(d, ch)
                if d2 == DEAD:
                    continue
                if self._autos[t].final[d2]:
                    kept = None
                    break
                kept.append((t, d2))
            nxt = trans[ch] = self.VIOLATED if kept is None else self._intern(tuple(kept))
        return nxt

    def merge(self, cid: int, extra: Pairs) -> int:
        """The union of constraint set ``cid`` and the pairs ``extra``."""
        if not extra:
            return cid
        key = (cid, extra)
        out = self._merges.get(key)
        if out is None:
            merged = tuple(sorted(set(self._states[cid]) | set(extra)))
            out = self._merges[key] = self._intern(merged)
        return out
