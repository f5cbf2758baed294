"""Token masks of a ``LarkGrammar`` over a whole vocabulary: the trie walked against the lexer.

For a text x the mask is {v : prefix(x·t(v)) = 0} (plus EOS when complete(x) = 0),
exactly what walking the byte trie and calling ``prefix`` per node gives, but computed
by *segments*.  A configuration (stack, lexeme state, constraints) is split into its
lexer part — a deterministic automaton per lexer context over character classes —
and its parser part.  A segment walks the vocabulary trie with the lexer automaton
only (Numba, ``_mask_walk.walk``): tokens inside the pending lexeme are allowed where
the automaton lives; where the lexeme may end (an event) the parser is fed the
terminal once per (terminal, constraints) group, and the walk continues below the
event nodes with the next context's lexer.  A segment's result depends only on its
lexer context, start state and start nodes, never on the stack below, so it is
cached and shared by every stack that reaches the same context: once warm, a mask
costs a few dictionary lookups, parser feeds and ORs of packed bit arrays.

Bits: word k bit j of a mask stands for token 32k + j (the xgrammar/llguidance layout).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from potentials._heap import collector_paused, freeze_long_lived_heap
from potentials._lark_lexer import LexContext
from potentials._lark_parser import Config, StackNode
from potentials._lark_regex import DEAD
from potentials._mask_lexer import ConstraintTable, SegmentLexer, SharedSegmentLexer
from potentials._mask_segment import Segment, SegmentWalker
from potentials.vocab_trie import VocabTrie, vocab_trie


class GrammarMask:
    """Packed token masks of one grammar for one vocabulary (see the module docstring)."""

    def __init__(self, grammar, vocab_bytes: Sequence[bytes | None],
                 eos_ids: Iterable[int] = (), cache_size: int = 4096) -> None:
        with collector_paused():  # see _heap: no full collection mid-compile
            self._build(grammar, vocab_bytes, eos_ids, cache_size)
        freeze_long_lived_heap()

    def _build(self, grammar, vocab_bytes: Sequence[bytes | None], eos_ids: Iterable[int],
               cache_size: int) -> None:
        self.grammar = grammar
        self.engine = grammar._engine
        self.constraints = self.engine.constraints
        self.eos_ids = np.asarray(sorted(set(eos_ids)), np.int64)
        self.trie: VocabTrie = vocab_trie(vocab_bytes, exclude=self.eos_ids.tolist())
        # the collectors recurse once per lexeme ending inside a token, so at most once
        # per byte of the longest token: above a few hundred, bits() raises Python's
        # recursion limit by that much while it collects, and restores it after
        longest = max((len(b) for b in vocab_bytes if b), default=0)
        self._extra_frames = longest + 100 if longest > 500 else 0
        self.vocab_size = len(vocab_bytes)
        self.words = (self.vocab_size + 31) // 32
        self._classes()
        for auto in self.engine.autos:  # a walk steps them on class representatives only
            auto.tabulate(self.class_rep[: self.n_char_classes])
        self.stats = {"walks": 0, "hits": 0, "misses": 0}
        self._lexers: dict[LexContext, SegmentLexer] = {}
        self._shared_lexers: dict[tuple, SharedSegmentLexer] = {}  # by Lark lexer
        self._lexer_ids: dict[LexContext, int] = {}
        self._roots: dict[tuple[int, int], Segment] = {}
        self._segments: dict[tuple[int, int, bytes], Segment] = {}
        self._masks: OrderedDict[frozenset[Config], np.ndarray] = OrderedDict()
        self._collected: OrderedDict[tuple[Segment, StackNode, int], np.ndarray] = \
            OrderedDict()
        # (segment uid, D, top D+1 stack states) -> collected mask (grammars without
        # indentation); keys of ints only, so the collector stops tracking them
        self._by_top: OrderedDict[tuple[int, int, tuple[int, ...]], np.ndarray] = OrderedDict()
        self._ids: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._indenting = self.engine.indentation is not None
        self.nl = self.engine.indentation.nl if self._indenting else -1
        self._col0 = 0 if self._indenting else -1
        self.cache_size = cache_size
        self.walker = SegmentWalker(self)
        self.constraint_table = ConstraintTable(self)
        if not self._indenting:  # every lexer tabulated and prefilled now, not mid-mask;
            # an indenting grammar's (no prefill: 124 lexers, 0.45 s for python.lark) are
            # tabulated when a mask first reaches them (~4 ms each), most never
            for wide in self.engine.wide_contexts():
                self._shared_lexers[wide.lexer_key] = SharedSegmentLexer(wide, self)

    # ---- character classes -------------------------------------------------------------
    def _classes(self) -> None:
        """Partition the vocabulary's alphabet by which regex atoms match each character.

        Each distinct atom (a one-character pattern) is run once over the whole alphabet
        with ``re.sub`` (C speed) instead of once per character; characters with the same
        row of matches share a class, numbered in order of first appearance."""
        atoms = self.grammar.atoms()
        alphabet = self.trie.alphabet
        n = len(alphabet)
        extra = self.engine.indentation is not None
        hits = np.zeros((max(1, n), len(atoms) + (3 if extra else 0)), np.bool_)
        if n:
            text = "".join(alphabet)
            present = set(alphabet)
            mark = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in present)
            code = ord(mark)
            for k, atom in enumerate(atoms):
                marked = atom.sub(mark, text)
                if len(marked) != n:  # not a one-character pattern: match char by char
                    hits[:, k] = [atom.fullmatch(ch) is not None for ch in alphabet]
                else:
                    hits[:, k] = np.frombuffer(marked.encode("utf-32-le"), np.uint32) == code
            if extra:  # these change the newline width: never share a class
                for j, ch in enumerate(" \t\n"):
                    if ch in present:
                        hits[alphabet.index(ch), len(atoms) + j] = True
        rows = np.packbits(hits, axis=1)
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.class_rep = [alphabet[i] for i in first[order]] if n else []
        # Held edges (``vocab_trie``): one column each, after the character classes; an
        # edge reads the classes of the characters its held bytes can become (a class
        # is added for a row no character of the alphabet has).
        class_of_row = ({rows[i].tobytes(): int(rank[inverse.reshape(-1)[i]]) for i in first}
                        if n else {})
        self.held_classes: list[list[int]] = []
        for key in self.trie.held_keys:
            ids: list[int] = []
            for ch in self.grammar.held_chars.reps(key) or ():
                row = np.zeros(hits.shape[1], np.bool_)
                row[: len(atoms)] = [a.fullmatch(ch) is not None for a in atoms]
                c = class_of_row.setdefault(np.packbits(row).tobytes(), len(self.class_rep))
                if c == len(self.class_rep):
                    self.class_rep.append(ch)
                if c not in ids:
                    ids.append(c)
            self.held_classes.append(ids)
        self.n_char_classes = max(1, len(self.class_rep))
        self.char_class = np.concatenate([
            rank[inverse.reshape(-1)].astype(np.int32)[:n],
            self.n_char_classes + np.arange(len(self.held_classes), dtype=np.int32)])
        self.n_classes = self.n_char_classes + len(self.held_classes)

    def _lexer(self, ctx: LexContext) -> SegmentLexer:
        lex = self._lexers.get(ctx)
        if lex is None:
            shared = self._shared_lexers.get(ctx.lexer_key)
            if shared is None:
                shared = self._shared_lexers[ctx.lexer_key] = SharedSegmentLexer(
                    self.engine.wide_context(ctx), self)
            lex = self._lexers[ctx] = SegmentLexer(ctx, shared)
            self._lexer_ids[ctx] = len(self._lexer_ids)
        return lex

    # ---- segments -------------------------------------------------------------------
    def _collect(self, seg: Segment, stack: StackNode, ind: int) -> np.ndarray:
        """Tokens of ``seg`` and of its continuations when the parser is at ``stack``
        (indentation state ``ind``).

        Memoised per (segment, stack): stacks are interned, so the same stack met again
        (e.g. after reductions back to a common parent) costs a lookup.
        """
        if not seg.groups:
            return seg.bits
        key = (seg, stack, ind)
        got = self._collected.get(key)
        if got is not None:
            return got
        engine = self.engine
        parts: dict[int, np.ndarray] = {}  # distinct continuation masks, OR-ed once each
        for g, (term, cid, col, nodes) in enumerate(seg.groups):
            emitted = engine.emit(stack, ind, term, col)
            if emitted is None:
                continue
            node2, ind2 = emitted
            ctx2 = engine.context_at(node2, ind2)
            if ctx2.init == DEAD:
                continue
            child = self._child(seg, g, ctx2, cid, nodes)
            got = child.bits if not child.groups else self._collect(child, node2, ind2)
            parts[id(got)] = got
        acc = seg.bits.copy()
        for got in parts.values():
            np.bitwise_or(acc, got, out=acc)
        _bounded_put(self._collected, key, acc, self.cache_size)
        return acc

    def _collect_top(self, seg: Segment, stack: StackNode) -> tuple[np.ndarray, int]:
        """``_collect`` for a grammar without indentation, and the lowest stack height read.

        The parser's answers (feeds, accepted terminals) depend only on the states it
        reads, so a result that read the top D + 1 states of ``stack`` holds for every
        stack with those top states: it is memoised under them, not under the stack
        node.  Most new stacks differ from a known one only below what a mask reads.
        """
        if not seg.groups:
            return seg.bits, stack.height
        height = stack.height
        memo = self._by_top
        top: tuple[int, ...] = ()
        if seg.depths:
            top = _top_states(stack, max(seg.depths) + 1)
            for d in seg.depths:
                if d < len(top):
                    got = memo.get((seg.uid, d, top[: d + 1]))
                    if got is not None:
                        return got, height - d
        engine, ignore = self.engine, self.engine.ignore
        low = height
        parts: dict[int, np.ndarray] = {}  # distinct continuation masks, OR-ed once each
        for g, (term, cid, _col, nodes) in enumerate(seg.groups):
            if term in ignore:
                node2 = stack
            else:
                node2, read = engine.feed_low(stack, term)
                if read < low:
                    low = read
                if node2 is None:
                    continue
            ctx2 = node2.ctx or engine.context(node2)
            if node2.ctx_low < low:
                low = node2.ctx_low
            if ctx2.init == DEAD:
                continue
            child = self._child(seg, g, ctx2, cid, nodes)
            if child.groups:
                got, read = self._collect_top(child, node2)
                if read < low:
                    low = read
            else:
                got = child.bits
            parts[id(got)] = got
        acc = seg.bits.copy()
        for got in parts.values():
            np.bitwise_or(acc, got, out=acc)
        d = height - low
        key = top[: d + 1] if d < len(top) else _top_states(stack, d + 1)
        _bounded_put(memo, (seg.uid, d, key), acc, self.cache_size)
        if d not in seg.depths:
            seg.depths.append(d)
        return acc, low

    def _child(self, seg: Segment, g: int, ctx: LexContext, cid: int,
               nodes: np.ndarray) -> Segment:
        """The segment continuing ``seg``'s group ``g`` in lexer context ``ctx``."""
        child = seg.children.get((g, self._lexer_ids.get(ctx, -1)))
        if child is None:
            lex = self._lexer(ctx)
            child = seg.children[(g, self._lexer_ids[ctx])] = self._continuation(lex, ctx, cid,
                                                                                nodes)
        return child

    def _continuation(self, lex: SegmentLexer, ctx: LexContext, cid: int,
                      nodes: np.ndarray) -> Segment:
        """The segment below ``nodes`` with a fresh lexeme of ``ctx``, shared by content.

        Keying by content (not by the path that led here) keeps lexeme splits that reach
        the same nodes — e.g. a run of spaces read as several ignored lexemes — from
        multiplying: the segments form a DAG whose size is linear in the token length.
        """
        sid = lex.state(ctx.init, cid, self._col0)
        key = (self._lexer_ids[ctx], sid, nodes.tobytes())
        seg = self._segments.get(key)
        if seg is None:
            seg = self._segments[key] = self.walker.run(lex, sid, nodes, False)
        return seg

    def _root(self, stack: StackNode, lid: int, cid: int, ind: int, col: int) -> Segment:
        ctx = self.engine.context_at(stack, ind)
        lex = self._lexer(ctx)
        sid = lex.state(lid, cid, col)
        key = (self._lexer_ids[ctx], sid)
        seg = self._roots.get(key)
        if seg is None:
            seg = self._roots[key] = self.walker.run(lex, sid, np.zeros(1, np.int64), True)
        return seg

    # ---- public ------------------------------------------------------------------------
    def bits(self, text: str) -> np.ndarray:
        """Packed mask (uint32 words) of the tokens allowed after ``text``, EOS included.

        The returned array is cached: do not modify it.
        """
        configs = self.grammar._configs(text)
        if not configs:
            return np.zeros(self.words, np.uint32)
        got = self._masks.get(configs)
        if got is not None:
            self.stats["hits"] += 1
            return got
        self.stats["misses"] += 1
        if self._extra_frames:
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(limit + self._extra_frames)
            try:
                acc = self._collect_configs(configs)
            finally:
                sys.setrecursionlimit(limit)
        else:
            acc = self._collect_configs(configs)
        if (self.eos_ids.size and self.engine.can_end(configs)
                and self.grammar.complete(text) == 0.0):
            for e in self.eos_ids.tolist():
                acc[e >> 5] |= np.uint32(1 << (e & 31))
        _bounded_put(self._masks, configs, acc, self.cache_size)
        return acc

    def _collect_configs(self, configs: frozenset[Config]) -> np.ndarray:
        """OR of the tokens each configuration allows (EOS aside)."""
        acc = np.zeros(self.words, np.uint32)
        for stack, lid, cid, ind, col in configs:
            root = self._root(stack, lid, cid, ind, col)
            got = (self._collect(root, stack, ind) if self._indenting
                   else self._collect_top(root, stack)[0])
            np.bitwise_or(acc, got, out=acc)
        return acc

    def cached_bits(self, text: str) -> np.ndarray | None:
        """The packed mask after ``text`` if it is already known (a lookup), else None."""
        configs = self.grammar._configs(text)
        if not configs:
            return np.zeros(self.words, np.uint32)
        return self._masks.get(configs)

    def token_ids(self, text: str) -> np.ndarray:
        """Sorted ids of the tokens allowed after ``text`` (EOS included); cached, read-only."""
        bits = self.bits(text)
        key = id(bits)
        got = self._ids.get(key)
        if got is None or got[0] is not bits:
            got = (bits, np.flatnonzero(unpack(bits, self.vocab_size)))
            _bounded_put(self._ids, key, got, self.cache_size)
        return got[1]

    def allowed(self, text: str) -> np.ndarray:
        """Boolean mask (length V) of the tokens allowed after ``text``, EOS included."""
        return unpack(self.bits(text), self.vocab_size)


def _top_states(stack: StackNode, n: int) -> tuple[int, ...]:
    """The states of the top ``n`` nodes of ``stack`` (fewer at the root), top first."""
    out = []
    node: StackNode | None = stack
    while node is not None and len(out) < n:
        out.append(node.state)
        node = node.parent
    return tuple(out)


def _bounded_put(cache: OrderedDict, key, value, size: int) -> None:
    """Insert, evicting the oldest entry when full (O(1): no latency spike from a clear)."""
    if len(cache) >= size:
        cache.popitem(last=False)
    cache[key] = value


def unpack(bits: np.ndarray, size: int) -> np.ndarray:
    """Boolean array of length ``size`` from packed uint32 words (bit j of word k = 32k + j)."""
    return np.unpackbits(bits.view(np.uint8), bitorder="little")[:size].astype(bool)
