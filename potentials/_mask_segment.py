"""Segments of a grammar mask: one lexer's walk of the vocabulary trie and its events.

A segment is what ``_mask_walk.walk`` finds below some trie nodes from one lexer state:
the tokens allowed inside the pending lexeme (``bits``) and the *event groups*, the
nodes where the lexeme may end as a given terminal with given constraints (the grammar
mask feeds the parser there and continues below with the next lexer).  The walk
discovers the lexer's table as it goes: it reports what it could not decide, this
module fills it in and resumes the walk from the missed nodes only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from potentials._mask_walk import PENDING, UNKNOWN, event_states, group_events, resume, walk
from potentials.vocab_trie import levels_deepest_first

if TYPE_CHECKING:
    from potentials._mask_lexer import SegmentLexer
    from potentials.grammar_mask import GrammarMask
    from potentials.vocab_trie import VocabTrie


class Segment:
    """Allowed tokens of one segment walk and its event groups (terminal, constraints,
    newline width, nodes)."""

    __slots__ = ("bits", "groups", "children", "depths", "uid", "__weakref__")
    _count = 0

    def __init__(self, bits: np.ndarray, groups: list[tuple[int, int, int, np.ndarray]]) -> None:
        Segment._count += 1
        self.uid = Segment._count  # names it in memo keys of ints only (never GC-tracked)
        self.bits = bits
        self.groups = groups
        self.children: dict[tuple[int, int], Segment] = {}  # (group, lexer id) -> segment
        self.depths: list[int] = []  # stack depths D of this segment's entries in _by_top


def class_summaries(trie: VocabTrie, node_class: np.ndarray, edge_class: np.ndarray,
                    n_classes: int, n_bits: int = 63) -> tuple[np.ndarray, ...]:
    """(class_bits, kid_bits, sub_bits): one bit per class (the ``n_bits`` classes most
    frequent on edges get their own, the rest share bit ``n_bits``), and per node the
    bits of the classes of its children / of every node below it (what
    ``_mask_walk.walk`` reads to skip event checks and uniform subtrees)."""
    counts = np.bincount(edge_class, minlength=n_classes)
    order = np.argsort(-counts, kind="stable")
    class_bit = np.full(n_classes, n_bits, np.uint64)
    class_bit[order[:n_bits]] = np.arange(min(n_bits, n_classes), dtype=np.uint64)
    class_bits = np.left_shift(np.uint64(1), class_bit)
    kid_bits = np.zeros(trie.n_nodes, np.uint64)
    has = np.diff(trie.child_start) > 0
    if has.any():
        kid_bits[has] = np.bitwise_or.reduceat(class_bits[edge_class],
                                               trie.child_start[:-1][has])
    own = class_bits[node_class]
    sub_bits = np.zeros(trie.n_nodes, np.uint64)
    for level in levels_deepest_first(trie.node_depth):
        np.bitwise_or.at(sub_bits, trie.parent[level], sub_bits[level] | own[level])
    return class_bits, kid_bits, sub_bits


class SegmentWalker:
    """Runs segment walks of one grammar mask: the trie as the walk reads it, scratch."""

    def __init__(self, mask: GrammarMask) -> None:
        trie = mask.trie
        self.words = mask.words
        # (a vocabulary without text tokens has no classes: its trie is the root alone)
        char_class = mask.char_class if len(mask.char_class) else np.zeros(1, np.int32)
        node_class = char_class[trie.node_char]  # class of the edge into a node
        edge_class = char_class[trie.child_char]  # class of each edge (CSR order)
        self.class_bits, kid_bits, sub_bits = class_summaries(trie, node_class, edge_class,
                                                              mask.n_classes)
        self.node_class = node_class
        # held edges (``vocab_trie``): the classes each may become, in CSR form
        held_start = np.zeros(len(mask.held_classes) + 1, np.int64)
        held_start[1:] = np.cumsum([len(c) for c in mask.held_classes])
        held_cls = np.asarray([c for cs in mask.held_classes for c in cs], np.int64)
        self.held = (np.array([mask.n_char_classes], np.int64), held_start, held_cls)
        self.trie = (trie.end, trie.node_depth, node_class, trie.child_start, edge_class,
                     kid_bits, sub_bits, self.class_bits, trie.tok_start, trie.tok_ids,
                     self.held)
        self.stack = np.empty(int(trie.node_depth.max(initial=0)) + 1, np.int64)
        cap = max(1024, trie.n_nodes)
        self.events = (np.empty(cap, np.int64), np.empty(cap, np.int64))
        self.misses = tuple(np.empty(4096, np.int64) for _ in range(5))
        self.marks = np.zeros(trie.n_nodes, np.uint8)  # scratch of group_events
        self.stats = mask.stats  # counts "walks"
        self.mask = mask
        self._opening: dict[int, np.ndarray] = {}
        # rows of ``opens``: the classes a next lexeme may start with, per set of merged
        # constraint sets a state's closes leave (row 0: the lexeme cannot end here)
        self.open_rows = np.zeros((8, mask.n_classes), np.bool_)
        self.open_row_bits: list[int] = [0]
        self._open_row_ids: dict[frozenset[int], int] = {frozenset(): 0}

    def opening_classes(self, cid: int) -> np.ndarray:
        """Classes a lexeme may start with under constraint set ``cid`` (bool per column).

        A class is out when its character breaks a constraint that ending the previous
        lexeme left (e.g. a letter right after an identifier Lark reads greedily); a
        held-edge column is kept (a bound: the walk decides it).
        """
        got = self._opening.get(cid)
        if got is None:
            mask = self.mask
            got = np.ones(mask.n_classes, np.bool_)
            step = mask.constraints.step
            for c, ch in enumerate(mask.class_rep[: mask.n_char_classes]):
                got[c] = step(cid, ch) >= 0
            self._opening[cid] = got
        return got

    def open_row(self, cids: frozenset[int]) -> int:
        """The ``open_rows`` row of the union of ``opening_classes`` over ``cids``."""
        row = self._open_row_ids.get(cids)
        if row is None:
            row = self._open_row_ids[cids] = len(self.open_row_bits)
            if row == len(self.open_rows):
                self.open_rows = np.concatenate([self.open_rows, np.zeros_like(self.open_rows)])
            for cid in cids:
                self.open_rows[row] |= self.opening_classes(cid)
            used = self.class_bits[self.open_rows[row]]
            self.open_row_bits.append(int(np.bitwise_or.reduce(used)) if len(used) else 0)
        return row

    def run(self, lex: SegmentLexer, sid: int, starts: np.ndarray, emit: bool) -> Segment:
        """The segment below ``starts`` from state ``sid`` (tokens at the start nodes
        count iff ``emit``), its events grouped by (terminal, merged constraints, width)."""
        bits = np.zeros(self.words, np.uint32)
        if lex.live[sid] <= 0:  # no useful terminal (``SegmentLexer.state`` knows sid)
            return Segment(bits, [])
        nodes, states = starts, np.full(len(starts), sid, np.int64)
        emits = np.full(len(starts), emit, np.bool_)
        n = 0
        while True:
            lex.sync()
            n, n_missing, n_pairs, n_asked = walk(
                self.trie, (lex.table, lex.live, self.open_rows, lex.open_row, lex.opens_bits),
                nodes, states, emits, bits, self.events, n, self.misses, self.stack)
            self._decide(lex, n_pairs, n_asked)
            if n < 0 or n_missing < 0:  # arrays too small: again from the start, larger
                if n < 0:
                    self.events = tuple(np.empty(2 * len(a), np.int64) for a in self.events)
                else:
                    self.misses = tuple(np.empty(2 * len(a), np.int64) for a in self.misses)
                nodes, states = starts, np.full(len(starts), sid, np.int64)
                emits = np.full(len(starts), emit, np.bool_)
                bits[:] = 0
                n = 0
                continue
            if not n_missing:
                break
            while True:  # resume from the missed nodes whose state is now known and live
                nodes, states, asked = resume(self.misses, n_missing, self.node_class,
                                              lex.table, lex.live, self.held)
                if not len(asked):
                    break
                lex.know(asked)
            emits = np.ones(len(nodes), np.bool_)
        self.stats["walks"] += 1
        return Segment(bits, self._groups(lex, n) if n else [])

    def _decide(self, lex: SegmentLexer, n_pairs: int, n_asked: int) -> None:
        """Fill the transitions and decide the liveness a walk asked for.

        The walk left the asked table entries ``PENDING`` (and states −2 in ``live``): if
        filling fails they are reset to unknown, so no later walk reads them as decided."""
        _nodes, _parents, pair_state, pair_class, asked = self.misses
        sids, classes = pair_state[:n_pairs].copy(), pair_class[:n_pairs].copy()
        try:
            if n_pairs:
                lex.shared.fill(sids, classes)
                lex.sync()
            if n_asked:
                lex.know(asked[:n_asked].copy())
        except BaseException:
            table = lex.shared.table
            table[table == PENDING] = UNKNOWN
            lex.live[lex.live == -2] = -1
            raise

    def _groups(self, lex: SegmentLexer, n: int) -> list[tuple[int, int, int, np.ndarray]]:
        """The first ``n`` events grouped by (terminal, merged constraints, width)."""
        ev_node, ev_state = self.events
        states = event_states(ev_state, n, len(lex.pairs))
        key_index: dict[tuple[int, int, int], int] = {}
        key_start = np.zeros(len(lex.pairs) + 1, np.int64)
        key_ids: list[int] = []
        for s in states.tolist():
            for key in lex.closes(s):
                key_ids.append(key_index.setdefault(key, len(key_index)))
            key_start[s + 1] = len(key_ids)
        np.maximum.accumulate(key_start, out=key_start)
        nodes, offsets = group_events(ev_node, ev_state, n, key_start,
                                      np.asarray(key_ids, np.int64), len(key_index), self.marks)
        return [(term, cid, col, nodes[offsets[g]:offsets[g + 1]].copy())
                for (term, cid, col), g in key_index.items()]
