"""The lexer of one context as the dense automaton that ``_mask_walk.walk`` reads.

States are (lexeme state, constraint set, newline width) triples of one ``LexContext``;
columns are the grammar mask's character classes, then one per held edge of the
vocabulary trie (``vocab_trie``: tokens that end inside a UTF-8 character).  Entries
are tabulated on demand: ``UNKNOWN`` ones are filled when a walk reaches them (the walk
reports them and resumes), so only the transitions some token reads are computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from potentials._lark_lexer import LexContext
from potentials._lark_regex import DEAD
from potentials._mask_walk import DEAD_STATE, UNKNOWN

if TYPE_CHECKING:
    from potentials.grammar_mask import GrammarMask


class SegmentLexer:
    """The lexer of one context as a dense automaton over (lexeme state, constraint set,
    newline width), tabulated on demand: ``UNKNOWN`` entries are filled when a walk
    reaches them (the walk reports them and runs again), so only the transitions that
    some token actually reads are ever computed."""

    def __init__(self, ctx: LexContext, mask: GrammarMask) -> None:
        self.ctx = ctx
        self.mask = mask
        self.pairs: list[tuple[int, int, int]] = []
        self.index: dict[tuple[int, int, int], int] = {}
        self.table = np.full((16, mask.n_classes), UNKNOWN, np.int32)
        self.closable = np.zeros(16, np.bool_)
        # opens[s, c]: the lexeme may end in s and a next lexeme may start with class c
        self.opens = np.zeros((16, mask.n_classes), np.bool_)

    def state(self, lid: int, cid: int, col: int) -> int:
        """Id of (lid, cid, col)."""
        sid = self.index.get((lid, cid, col))
        return self._intern(lid, cid, col) if sid is None else sid

    def _intern(self, lid: int, cid: int, col: int) -> int:
        sid = len(self.pairs)
        self.pairs.append((lid, cid, col))
        self.index[(lid, cid, col)] = sid
        if sid >= self.table.shape[0]:
            grow = self.table.shape[0]
            self.table = np.concatenate([self.table, np.full_like(self.table[:grow], UNKNOWN)])
            self.closable = np.concatenate([self.closable, np.zeros(grow, np.bool_)])
            self.opens = np.concatenate([self.opens, np.zeros_like(self.opens[:grow])])
        merge, opens = self.mask.constraints.merge, self.mask.opening_classes
        for _term, extra in self.ctx.closes(lid):
            np.logical_or(self.opens[sid], opens(merge(cid, extra)), out=self.opens[sid])
        self.closable[sid] = bool(self.opens[sid].any())
        return sid

    def fill(self, sids: np.ndarray, classes: np.ndarray) -> None:
        """Compute the transitions (sid, class) a walk found unknown.

        A held-edge column (``vocab_trie``) is alive iff one of the classes its held bytes
        can become is; it then leads to that class's state (only the edge's leaf, which
        holds tokens, is visited)."""
        mask = self.mask
        reps, n_chars = mask.class_rep, mask.n_char_classes
        for sid, c in zip(sids.tolist(), classes.tolist(), strict=True):
            if self.table[sid, c] != UNKNOWN:
                continue
            if c < n_chars:
                nxt = self._next(sid, reps[c])        # may grow (replace) self.table
                self.table[sid, c] = nxt
                continue
            nxt = DEAD_STATE
            for cc in mask.held_classes[c - n_chars]:
                got = self.table[sid, cc]
                if got == UNKNOWN:
                    got = self._next(sid, reps[cc])
                    self.table[sid, cc] = got
                if got != DEAD_STATE:
                    nxt = got
                    break
            self.table[sid, c] = nxt

    def _next(self, sid: int, ch: str) -> int:
        """The state after ``ch`` from state ``sid``, or ``DEAD_STATE``."""
        lid, cid, col = self.pairs[sid]
        cid2 = self.mask.constraints.step(cid, ch)
        if cid2 < 0:
            return DEAD_STATE
        lid2 = self.ctx.step(lid, ch)
        if lid2 == DEAD:
            return DEAD_STATE
        key = (lid2, cid2, self.mask.engine.width(self.ctx, lid2, col, ch))
        nxt = self.index.get(key)
        return self._intern(*key) if nxt is None else nxt
