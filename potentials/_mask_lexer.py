"""The lexer of one context as the dense automaton that ``_mask_walk.walk`` reads.

Lark's contextual lexer differs between parser states in two ways: the terminals it
tries (its *lexer*: order, keywords, re-typings) and the terminals the parser can take
there (*useful*).  The transitions depend only on the lexer, so they are tabulated once
per lexer (``SharedSegmentLexer``, lexeme states normalised as if every terminal were
useful) and every context with that lexer reads the same table through a
``SegmentLexer`` view that adds what usefulness decides: whether a state is alive (some
terminal it may still end as is useful) and where a next lexeme may start.  Dropping a
terminal that is not useful changes no useful token (it can neither be emitted nor
pre-empt a useful one: exact terminals are kept), so the view's language equals the
context's own lexer's.

States are (lexeme state, constraint set, newline width) triples; columns are the
grammar mask's character classes (a held edge of the vocabulary trie, a token ending
inside a UTF-8 character, reads the columns of the characters it may become:
``_mask_walk.held_state``).  The unconstrained states (constraint set 0, no newline
width: most of them) are tabulated at compile and each context decides their liveness
at once when it is created (``SharedSegmentLexer.prefill``); the rest are tabulated on
demand: ``UNKNOWN`` entries are filled when a walk reaches them (the walk reports them
and resumes), so only the transitions that some token reads are computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from potentials._lark_lexer import LexContext
from potentials._lark_regex import DEAD
from potentials._mask_walk import DEAD_STATE, UNKNOWN

if TYPE_CHECKING:
    from potentials.grammar_mask import GrammarMask


class ConstraintTable:
    """``Constraints.step`` over the grammar mask's character classes, one row per
    constraint set, tabulated when the set first appears (−1: violated)."""

    def __init__(self, mask: GrammarMask) -> None:
        self.constraints = mask.constraints
        self.reps = mask.class_rep[: mask.n_char_classes]
        self.next = np.zeros((16, mask.n_char_classes), np.int32)
        self.rows = 1  # set 0 (no constraint) steps to itself on every class

    def table(self) -> np.ndarray:
        """The table, with a row for every constraint set that exists now."""
        states, step = self.constraints._states, self.constraints.step
        while self.rows < len(states):  # stepping may intern new sets: they get rows too
            cid = self.rows
            if cid >= len(self.next):
                self.next = np.concatenate([self.next, np.zeros_like(self.next)])
            if self.reps:
                self.next[cid] = [step(cid, ch) for ch in self.reps]
            self.rows += 1
        return self.next


_ROW_WEIGHTS = np.random.default_rng(0).integers(1, 2**63, 4096, dtype=np.uint64) | 1


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each distinct row's first occurrence, distinct-row number of each row).

    Rows are grouped by a random 64-bit linear hash (one matrix product), then checked
    equal to their group's first row; a collision falls back to exact byte keys."""
    width = rows.shape[1]
    if width <= len(_ROW_WEIGHTS):
        with np.errstate(over="ignore"):
            hashes = (rows.astype(np.uint64) + np.uint64(2)) @ _ROW_WEIGHTS[:width]
        _, first, which = np.unique(hashes, return_index=True, return_inverse=True)
        which = which.reshape(-1)
        if (rows == rows[first[which]]).all():
            return first, which
    keys: dict[bytes, int] = {}
    first_l: list[int] = []
    which = np.empty(len(rows), np.int64)
    for i, row in enumerate(np.ascontiguousarray(rows)):
        j = keys.setdefault(row.tobytes(), len(keys))
        if j == len(first_l):
            first_l.append(i)
        which[i] = j
    return np.asarray(first_l, np.int64), which


class SharedSegmentLexer:
    """Transitions of one Lark lexer over (lexeme state, constraints, width), shared by
    every context with that lexer (``lc``: its lexeme states with every terminal useful).

    The lexeme part is tabulated eagerly (``lex_next[lid, class]``, every state reachable
    from the ones known: a few hundred per lexer for the shipped grammars), so filling
    what a walk found unknown is array indexing plus the interning of new triples."""

    def __init__(self, lc: LexContext, mask: GrammarMask) -> None:
        self.lc = lc
        self.mask = mask
        self.pairs: list[tuple[int, int, int]] = []
        self.index: dict[tuple[int, int, int], int] = {}
        self.table = np.full((16, mask.n_char_classes), UNKNOWN, np.int32)
        self.lid_of = np.zeros(16, np.int32)  # lexeme state of each triple
        self.cid_of = np.zeros(16, np.int32)  # constraint set of each triple
        self.lex_next = np.full((16, mask.n_char_classes), DEAD, np.int32)
        self.n_lex = 0  # rows of lex_next computed
        self._emitters: dict[int, frozenset[int]] = {}  # lexeme state -> E (see emitters)
        self.tabulate()
        self.prefilled = 0  # triples 0..prefilled-1 are (lid, 0, -1): see prefill
        if mask.engine.indentation is None:
            self.prefill()

    def prefill(self) -> None:
        """Every unconstrained triple (lid, 0, −1), sid = lid, with its whole table row,
        and per lexeme state what a context view needs to decide its liveness and open
        row at once (``SegmentLexer.__init__``): ``emit_rows[lid, t]`` (t may be emitted)
        and ``close_cid[lid, t]`` (the constraint set ending as t leaves, −1: t does not
        end it; ``regular[lid]`` False where a terminal ends it twice: left lazy).

        Stepping set 0 leaves set 0 (``ConstraintTable``), and without indentation the
        width is −1, so these rows are ``lex_next`` renamed: no walk from an
        unconstrained state misses a transition."""
        n, lc = self.n_lex, self.lc
        self.pairs = [(lid, 0, -1) for lid in range(n)]
        self.index = {key: sid for sid, key in enumerate(self.pairs)}
        size = max(16, 1 << max(0, n - 1).bit_length())
        self.table = np.full((size, self.table.shape[1]), UNKNOWN, np.int32)
        self.table[:n] = np.where(self.lex_next[:n] == DEAD, DEAD_STATE, self.lex_next[:n])
        self.lid_of = np.zeros(size, np.int32)
        self.lid_of[:n] = np.arange(n)
        self.cid_of = np.zeros(size, np.int32)
        n_terms = len(self.mask.engine.autos)
        self.emit_rows = np.zeros((n, n_terms), np.bool_)
        self.close_cid = np.full((n, n_terms), -1, np.int32)
        self.regular = np.ones(n, np.bool_)
        merge = self.mask.constraints.merge
        for lid in range(n):
            self.emit_rows[lid, list(self.emitters(lid))] = True
            for term, extra in lc.closes(lid):
                if self.close_cid[lid, term] >= 0:
                    self.regular[lid] = False
                self.close_cid[lid, term] = merge(0, extra)
        self.close_cols = np.flatnonzero((self.close_cid >= 0).any(axis=0))
        self.prefilled = n

    def tabulate(self) -> None:
        """Rows of ``lex_next`` for every lexeme state of ``lc`` and all they reach."""
        lc, reps = self.lc, tuple(self.mask.class_rep[: self.mask.n_char_classes])
        row = self.n_lex
        while row < len(lc._states):  # stepping appends the states it reaches
            if row >= len(self.lex_next):
                self.lex_next = np.concatenate([self.lex_next, np.full_like(self.lex_next,
                                                                            DEAD)])
            if reps:  # (no text token, no character: every row stays dead)
                self.lex_next[row] = lc.step_row(row, reps)
            row += 1
        self.n_lex = row

    def state(self, lid: int, cid: int, col: int) -> int:
        """Id of (lid, cid, col), ``lid`` a lexeme state of ``lc``."""
        sid = self.index.get((lid, cid, col))
        if sid is None:
            sid = len(self.pairs)
            self.pairs.append((lid, cid, col))
            self.index[(lid, cid, col)] = sid
            if sid >= self.table.shape[0]:
                self.table = np.concatenate([self.table, np.full_like(self.table, UNKNOWN)])
                self.lid_of = np.concatenate([self.lid_of, np.zeros_like(self.lid_of)])
                self.cid_of = np.concatenate([self.cid_of, np.zeros_like(self.cid_of)])
            self.lid_of[sid] = lid
            self.cid_of[sid] = cid
        return sid

    def emitters(self, lid: int) -> frozenset[int]:
        """Terminals that ending a lexeme from ``lid`` may emit: its main terminals and
        the re-typing targets of those still alive.  The state is alive in a context iff
        one of them is useful there (``LexContext._capable``)."""
        got = self._emitters.get(lid)
        if got is None:
            lc = self.lc
            pairs = lc._states[lid]
            alive = {t for t, _d in pairs}
            main = [t for t, _d in pairs[: lc._n_main[lid]]]
            got = frozenset(main) | {u for t in main for u in lc._unless.get(t, ()) if u in alive}
            self._emitters[lid] = got
        return got

    def fill(self, sids: np.ndarray, classes: np.ndarray) -> None:
        """Compute the distinct transitions (sid, character class) a walk found unknown.

        Held-edge columns are never stored here: which class a held edge may become is
        alive depends on the context (``_mask_walk.held_state`` decides it per walk)."""
        mask = self.mask
        self.tabulate()  # lexeme states a context view added since (``SegmentLexer.state``)
        lid2 = self.lex_next[self.lid_of[sids], classes]
        cid2 = mask.constraint_table.table()[self.cid_of[sids], classes]
        out = np.full(len(sids), DEAD_STATE, np.int32)
        index, pairs = self.index, self.pairs
        width = mask.engine.width if mask.engine.indentation is not None else None
        reps, lc = mask.class_rep, self.lc
        for k in np.flatnonzero((lid2 != DEAD) & (cid2 >= 0)).tolist():
            lid, cid = int(lid2[k]), int(cid2[k])
            col = -1 if width is None else width(lc, lid, pairs[sids[k]][2], reps[classes[k]])
            key = (lid, cid, col)
            nxt = index.get(key)
            out[k] = self.state(*key) if nxt is None else nxt  # may grow self.table
        self.table[sids, classes] = out


class SegmentLexer:
    """One context's view of its lexer's shared table: which states are alive here
    (``live``: 1, 0, or −1 not known yet), where a lexeme may end and a next one start
    (``open_row[s]``: a row of the walker's ``open_rows[row, class]``, 0 where the
    lexeme cannot end; ``opens_bits[s]`` that row as class bits), and the closes the
    context's parser takes."""

    def __init__(self, ctx: LexContext, shared: SharedSegmentLexer) -> None:
        self.ctx = ctx
        self.shared = shared
        self.mask = shared.mask
        self._useful = ctx._useful
        self._wide: dict[int, int] = {}  # ctx lexeme state -> shared lexeme state
        self.live = np.full(16, -1, np.int8)
        self.open_row = np.zeros(16, np.int32)  # row of the walker's open_rows
        self.opens_bits = np.zeros(16, np.uint64)  # that row as a set of class bits
        self._closes: dict[int, list[tuple[int, int, int]]] = {}
        self._rows: dict[tuple[int, int], int] = {}  # (lexeme state, cid) -> open row
        if shared.prefilled:
            self._know_unconstrained()

    def _know_unconstrained(self) -> None:
        """The overlay of the shared lexer's prefilled triples (lid, 0, −1), at once:
        alive iff a useful terminal may be emitted, open row from the constraint sets
        its useful closes leave (what ``know`` computes one state at a time)."""
        shared, walker = self.shared, self.mask.walker
        n = shared.prefilled
        self.sync()
        useful = np.zeros(shared.emit_rows.shape[1], np.bool_)
        useful[[t for t in self._useful if t < len(useful)]] = True
        alive = (shared.emit_rows & useful).any(axis=1)
        self.live[:n] = np.where(shared.regular, alive, -1)
        open_row, opens_bits = self.open_row, self.opens_bits
        cols = shared.close_cols  # the terminals some state may end as
        cids = np.where(useful[cols], shared.close_cid[:, cols], -1)
        ends = np.flatnonzero(alive & shared.regular & (cids >= 0).any(axis=1))
        if len(ends):  # one open row per distinct set of constraint sets left
            first, which = _distinct_rows(cids[ends])
            distinct = cids[ends[first]]
            kept = distinct >= 0
            values, counts = distinct[kept].tolist(), kept.sum(axis=1).tolist()
            rows, at = [], 0
            for count in counts:
                rows.append(walker.open_row(frozenset(values[at:at + count])))
                at += count
            open_row[ends] = np.asarray(rows, np.int32)[which]
            opens_bits[ends] = np.asarray(walker.open_row_bits, np.uint64)[open_row[ends]]

    @property
    def table(self) -> np.ndarray:
        return self.shared.table

    @property
    def pairs(self) -> list[tuple[int, int, int]]:
        return self.shared.pairs

    def state(self, lid: int, cid: int, col: int) -> int:
        """Shared id of (lid, cid, col), ``lid`` a lexeme state of this context; its
        overlay is known on return."""
        wide = self._wide.get(lid)
        if wide is None:
            ctx, lc = self.ctx, self.shared.lc
            pairs, n_main = ctx._states[lid], ctx._n_main[lid]
            wide = lc._normalise(list(pairs[:n_main]), pairs[n_main:])
            if lid == ctx.init and wide != DEAD:
                lc._closes[wide] = []  # an empty lexeme is never a token
            self._wide[lid] = wide
        sid = self.shared.state(wide, cid, col)
        self.sync()
        self.know(np.array([sid]))
        return sid

    def sync(self) -> None:
        """Grow the overlay to the shared table's states (new ones not known yet)."""
        n, have = len(self.shared.pairs), len(self.live)
        if n > have:
            grow = max(n, 2 * have) - have
            self.live = np.concatenate([self.live, np.full(grow, -1, np.int8)])
            self.open_row = np.concatenate([self.open_row, np.zeros(grow, np.int32)])
            self.opens_bits = np.concatenate([self.opens_bits, np.zeros(grow, np.uint64)])

    def know(self, sids: np.ndarray) -> None:
        """Compute the overlay of the states ``sids`` not known yet."""
        shared, useful, live, rows = self.shared, self._useful, self.live, self._rows
        walker = self.mask.walker
        for sid in sids.tolist():
            if live[sid] >= 0:
                continue
            lid, cid, _col = shared.pairs[sid]
            if useful.isdisjoint(shared.emitters(lid)):
                live[sid] = 0
                continue
            live[sid] = 1
            row = rows.get((lid, cid))
            if row is None:
                row = rows[(lid, cid)] = walker.open_row(frozenset(
                    merged for _term, merged, _width in self.closes(sid)))
            if row:
                self.open_row[sid] = row
                self.opens_bits[sid] = walker.open_row_bits[row]

    def closes(self, sid: int) -> list[tuple[int, int, int]]:
        """(terminal, merged constraints, newline width or −1) of each way this context
        ends the lexeme in state ``sid``."""
        got = self._closes.get(sid)
        if got is None:
            lid, cid, col = self.shared.pairs[sid]
            merge, nl = self.mask.constraints.merge, self.mask.nl
            got = self._closes[sid] = [(term, merge(cid, extra), col if term == nl else -1)
                                       for term, extra in self.shared.lc.closes(lid)
                                       if term in self._useful]
        return got
