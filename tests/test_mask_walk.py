"""The structures the mask's trie walk reads, each against its definition.

* The vocabulary trie is numbered in preorder: a subtree is the id range [i, end[i]);
  ``parent``, ``node_depth``, ``node_char`` and ``tok_node`` agree with the CSR arrays.
* The walk as a forward scan (dead and uniform subtrees jumped, tokens set per run of
  visited nodes) allows exactly the tokens, and records exactly the events, that a
  brute-force recursive run of the same automaton does.
* Contexts with the same Lark lexer read one shared transition table; the prefilled
  unconstrained rows and the views' at-once overlays equal the lazy ones.
* Events are recorded only where a next lexeme may start.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from potentials import LarkGrammar
from potentials._mask_segment import class_summaries
from potentials._mask_walk import walk
from potentials.grammar_mask import unpack
from potentials.held_chars import narrows
from potentials.vocab_trie import VocabTrie
from smc.token_bytes import complete_utf8

ALPHABET = "ab,( \u00e9"

vocab_st = st.lists(st.text(ALPHABET, min_size=1, max_size=5), min_size=1, max_size=60)


def _descendants(trie: VocabTrie, i: int) -> set[int]:
    out, todo = set(), [i]
    while todo:
        n = todo.pop()
        out.add(n)
        todo.extend(trie.child_node[trie.child_start[n]:trie.child_start[n + 1]].tolist())
    return out


# held tails: narrowed (a held edge: 2- and 3-byte leads), not narrowed (a 4-byte lead:
# the token sits at its text's node), never UTF-8 (U+FFFD)
TAILS = [b"", b"", b"\xc3", b"\xe2\x82", b"\xf0", b"\xff"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.text(ALPHABET, max_size=5), st.sampled_from(TAILS)),
                min_size=1, max_size=60))
def test_trie_is_numbered_in_preorder(words):
    vocab = [w.encode() + tail for w, tail in words] + [None]  # and a special token
    trie = VocabTrie(vocab)
    assert trie.end[0] == trie.n_nodes
    for i in range(trie.n_nodes):
        assert set(range(i, int(trie.end[i]))) == _descendants(trie, i)
        for j in range(trie.child_start[i], trie.child_start[i + 1]):
            child = int(trie.child_node[j])
            assert child > i and trie.parent[child] == i
            assert trie.node_depth[child] == trie.node_depth[i] + 1
            assert trie.node_char[child] == trie.child_char[j]
    for t in range(len(vocab)):
        node = int(trie.tok_node[t])
        holds = [n for n in range(trie.n_nodes)
                 if t in trie.tok_ids[trie.tok_start[n]:trie.tok_start[n + 1]].tolist()]
        assert holds == ([] if node < 0 else [node])
    assert trie.tok_node[len(words)] == -1  # the special token has no node
    n_chars = len(trie.alphabet)
    for t, data in enumerate(vocab[:-1]):  # a token's node spells its path from the root
        text, n_held = complete_utf8(data)
        tail = data[len(data) - n_held:] if n_held and narrows(data[len(data) - n_held:]) \
            else None
        node, spelled = int(trie.tok_node[t]), []
        while node:
            c = int(trie.node_char[node])
            spelled.append(trie.alphabet[c] if c < n_chars else trie.held_keys[c - n_chars])
            node = int(trie.parent[node])
        assert spelled[::-1] == list(text) + ([] if tail is None else [tail])
    for i in range(trie.n_nodes):  # children by character, each once; nodes are distinct
        chars = trie.child_char[trie.child_start[i]:trie.child_start[i + 1]].tolist()
        assert chars == sorted(set(chars))
    assert trie.depth == max(len(complete_utf8(d)[0]) for d in vocab[:-1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.text(ALPHABET, max_size=5), st.sampled_from(TAILS)),
                min_size=1, max_size=40))
def test_trie_sorts_paths_alike_in_numpy_and_in_python(words):
    """The NumPy string sort of the paths (ids + 1 as UCS4, zero-padded) and the Python
    sort of big-endian byte keys it replaces below a size give the same trie."""
    import potentials.vocab_trie as vt

    vocab = [w.encode() + tail for w, tail in words]
    fast = VocabTrie(vocab)
    saved, vt._MATRIX_CELLS = vt._MATRIX_CELLS, 0
    try:
        slow = VocabTrie(vocab)
    finally:
        vt._MATRIX_CELLS = saved
    for name in vt._ARRAYS:
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert (fast.alphabet, fast.held_keys) == (slow.alphabet, slow.held_keys)


def _brute(trie, char_class, table, live, opens, start, emit_root):
    """Tokens below ``start`` along which the automaton stays alive and live, and the
    events (node, state): visited nodes with a child whose class ``opens[state]``."""
    out, events = set(), set()

    def visit(node, state, is_root):
        if not is_root or emit_root:
            out.update(trie.tok_ids[trie.tok_start[node]:trie.tok_start[node + 1]].tolist())
        kids = range(trie.child_start[node], trie.child_start[node + 1])
        if any(opens[state, char_class[trie.child_char[j]]] for j in kids):
            events.add((node, state))
        for j in kids:
            nxt = table[state, char_class[trie.child_char[j]]]
            if nxt >= 0 and live[nxt] > 0:
                visit(int(trie.child_node[j]), int(nxt), False)

    visit(start, 0, True)
    return out, events


@settings(max_examples=150, deadline=None)
@given(vocab_st, st.integers(0, 2**32 - 1), st.booleans(), st.integers(1, 8))
def test_scan_walk_allows_what_a_recursive_walk_allows(words, seed, emit_root, n_bits):
    """Random automata with self-loops (uniform subtrees are skipped whole), dead states,
    events, and few class bits (classes share a bit: a shared bit loops only if all its
    classes do; an event check reads the bits first)."""
    vocab = [w.encode() for w in words]
    trie = VocabTrie(vocab)
    rng = np.random.default_rng(seed)
    n_cls = len(trie.alphabet) + len(trie.held_keys)
    n_states = int(rng.integers(1, 5))
    table = rng.integers(-1, n_states, (n_states, n_cls)).astype(np.int32)  # fully known
    loops = rng.random((n_states, n_cls)) < 0.5
    table[loops] = np.nonzero(loops)[0]  # many self-loops: uniform subtrees
    char_class = np.arange(n_cls, dtype=np.int32)
    live = (rng.random(n_states) < 0.8).astype(np.int8)
    open_rows = rng.random((3, n_cls)) < rng.choice([0.05, 0.3])
    open_rows[0] = False  # row 0: the lexeme cannot end
    open_row = rng.integers(0, 3, n_states).astype(np.int32)
    opens = open_rows[open_row]
    start = int(rng.integers(0, trie.n_nodes))
    want, want_events = _brute(trie, char_class, table, live, opens, start, emit_root)
    node_class = char_class[trie.node_char]
    edge_class = char_class[trie.child_char]
    class_bits, kid_bits, sub_bits = class_summaries(trie, node_class, edge_class, n_cls,
                                                     n_bits)
    arrays = (trie.end, trie.node_depth, node_class, trie.child_start, edge_class,
              kid_bits, sub_bits, class_bits, trie.tok_start, trie.tok_ids,
              (np.array([n_cls]), np.zeros(1, np.int64), np.zeros(0, np.int64)))  # no held
    opens_bits = np.array([np.bitwise_or.reduce(class_bits[row]) if row.any() else 0
                           for row in opens], np.uint64)
    lexer = (table, live, open_rows, open_row, opens_bits)
    words_n = (len(vocab) + 31) // 32
    bits = np.zeros(words_n, np.uint32)
    misses = tuple(np.empty(64, np.int64) for _ in range(5))
    stack = np.empty(int(trie.node_depth.max()) + 1, np.int64)
    events = (np.empty(512, np.int64), np.empty(512, np.int64))
    n, n_missing, n_pairs, n_asked = walk(
        arrays, lexer, np.array([start]), np.array([0]), np.array([emit_root]), bits, events,
        0, misses, stack)
    assert (n_missing, n_pairs, n_asked) == (0, 0, 0)
    got = set(np.flatnonzero(unpack(bits, len(vocab))).tolist())
    assert got == want
    assert sorted(zip(events[0][:n].tolist(), events[1][:n].tolist(), strict=True)) == \
        sorted(want_events)


def test_contexts_with_one_lark_lexer_share_a_table():
    """After NAME, Lark's lexer tries ")" and "]" alike (one LALR state); which one the
    parser takes depends on the stack: two contexts, one table."""
    g = LarkGrammar('start: "(" x ")" | "[" x "]"\nx: NAME\nNAME: /[a-z]+/')
    vocab = [c.encode() for c in "()[]ab"] + [b"ab", b"a)", b"a]", b"b)]"]
    m = g.token_masker(vocab, [])
    assert unpack_ids(m, "(a") == {"a", "b", "ab", ")", "a)"}
    assert unpack_ids(m, "[a") == {"a", "b", "ab", "]", "a]"}
    by_shared: dict[int, set] = {}
    for ctx, view in m._lexers.items():
        by_shared.setdefault(id(view.shared), set()).add(ctx)
    assert max(len(ctxs) for ctxs in by_shared.values()) >= 2  # two contexts, one table
    for ctx, view in m._lexers.items():
        assert view.shared is m._shared_lexers[ctx.lexer_key]
        assert view.table is view.shared.table


def test_prefilled_rows_and_overlays_equal_the_lazy_ones():
    """Unconstrained triples are tabulated at compile and every context view decides
    them at once: their table rows equal what ``fill`` computes, their liveness and open
    rows what ``know`` computes one state at a time (SQL: case-insensitive keywords
    against identifiers, so constrained triples exist beside them)."""
    import grammars

    g = LarkGrammar(grammars.load("sql"), ignore_case=True)
    vocab = [w.encode() for w in ["SELECT", " a", " FROM", " t", " WHERE", " b", " =", " 1",
                                  ",", "(", ")", " se", "lect", "'x'", " ORDER", " BY"]]
    m = g.token_masker(vocab, [])
    for text in ["", "SELECT a", "SELECT a FROM t WHERE b = 1", "SELECT se", "SELECT (a"]:
        m.bits(text)
    assert m._lexers
    for shared in m._shared_lexers.values():
        n = shared.prefilled
        assert n == shared.n_lex > 0 and shared.pairs[:n] == [(lid, 0, -1) for lid in range(n)]
        got = shared.table[:n].copy()
        shared.table[:n] = -2
        shared.fill(np.repeat(np.arange(n), got.shape[1]), np.tile(np.arange(got.shape[1]), n))
        assert np.array_equal(shared.table[:n], got)
    for view in m._lexers.values():
        n = view.shared.prefilled
        decided = np.flatnonzero(view.live[:n] >= 0)
        assert len(decided) == int(view.shared.regular.sum())
        live, row, bits = (view.live[decided].copy(), view.open_row[decided].copy(),
                           view.opens_bits[decided].copy())
        view.live[decided], view.open_row[decided], view.opens_bits[decided] = -1, 0, 0
        view._rows.clear()
        view.know(decided)
        assert np.array_equal(view.live[decided], live)
        assert np.array_equal(view.open_row[decided], row)
        assert np.array_equal(view.opens_bits[decided], bits)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 6), st.booleans())
def test_distinct_rows_groups_equal_rows_even_when_hashes_collide(seed, n, width, collide):
    """``_distinct_rows``: rows numbered by first occurrence of equal content; with every
    hash equal (weights all zero) the check fails and the exact fallback groups them."""
    import potentials._mask_lexer as ml

    rng = np.random.default_rng(seed)
    rows = rng.integers(-1, 3, (n, width)).astype(np.int32)
    saved = ml._ROW_WEIGHTS
    if collide:
        ml._ROW_WEIGHTS = np.zeros_like(saved)
    try:
        first, which = ml._distinct_rows(rows)
    finally:
        ml._ROW_WEIGHTS = saved
    assert np.array_equal(rows, rows[first[which]])
    distinct = {r.tobytes() for r in rows}
    assert len(first) == len(distinct) == len({rows[i].tobytes() for i in first})


def test_events_only_where_a_next_lexeme_may_start():
    """After "(" the NAME lexeme starts; Lark reads NAME greedily, so nothing but "," or
    ")" may start the next lexeme: no event inside "abab", one at "ab" (child ",")."""
    g = LarkGrammar('start: "(" NAME ("," NAME)* ")"\nNAME: /[a-z]+/')
    vocab = [b"abab", b"ab", b"ab,", b"(", b",", b")"]
    m = g.token_masker(vocab, [])
    m.bits("(")
    (root,) = m._roots.values()  # "(" pending at the trie root; it closes there
    (name_seg,) = root.children.values()  # the NAME lexeme from the trie root
    names = m_vocab(m)
    event_nodes = {int(n) for _t, _c, _col, nodes in name_seg.groups for n in nodes}
    assert {_text_of(m.trie, n) for n in event_nodes} == {"ab"}
    assert {names[t] for t in np.flatnonzero(unpack(name_seg.bits, 6))} == {
        "abab", "ab"}


def unpack_ids(m, text: str) -> set[str]:
    allowed = np.flatnonzero(unpack(m.bits(text), m.vocab_size))
    return {m_vocab(m)[i] for i in allowed.tolist()}


def m_vocab(m) -> dict[int, str]:
    trie = m.trie
    out = {}
    for node in range(trie.n_nodes):
        for t in trie.tok_ids[trie.tok_start[node]:trie.tok_start[node + 1]].tolist():
            out[t] = _text_of(trie, node)
    return out


def _text_of(trie, node: int) -> str:
    chars = []
    while node:
        chars.append(trie.alphabet[int(trie.node_char[node])])
        node = int(trie.parent[node])
    return "".join(reversed(chars))


def _assert_mask_is_brute_force(grammar_text: str, vocab: list[bytes], texts: list[str]) -> None:
    """GrammarMask against the byte-trie walk with ``prefix`` per node (the tests' reference)."""
    from smc.token_trie import TokenTrie

    eos = len(vocab)
    full = [*vocab, None]
    fast_g, brute_g = LarkGrammar(grammar_text), LarkGrammar(grammar_text)
    masker = fast_g.token_masker(full, [eos])
    trie = TokenTrie(full, exclude=[eos])
    for text in texts:
        brute = np.zeros(len(full), bool)
        ids, _ = trie.walk(brute_g, text, b"")
        brute[ids] = True
        brute[eos] = brute_g.prefix(text) == 0.0 and brute_g.complete(text) == 0.0
        fast = masker.allowed(text)
        assert np.array_equal(fast, brute), (text, [full[i] for i in np.flatnonzero(fast ^ brute)])


def test_held_edge_is_decided_per_context():
    """Two contexts share a Lark lexer; "\\xc3" may become "é" in one and "è" in the other.
    A held column stored once in the shared table (the first class whose state exists)
    would drop the token in one of them; both orders of the terminals are tried."""
    vocab = [b"a", b"b", b"e", b"\xc3", "é".encode(), "è".encode()]
    for first, second in (("é", "è"), ("è", "é")):
        grammar = f'start: "a" x C | "b" x D\nx: "e"\nC: "{first}"\nD: "{second}"'
        _assert_mask_is_brute_force(grammar, vocab, ["", "a", "ae", "b", "be"])


def test_nested_start_nodes_are_each_scanned():
    """A terminal that is not longest-match safe ends at every "a": the continuation starts
    at nested trie nodes, whose subtrees are scanned once per start (more visits than
    nodes; the per-depth state stack is reset at each start)."""
    vocab = [b"a" * k for k in range(1, 200)]
    _assert_mask_is_brute_force('start: A+\nA: /a|aa|aaa/', vocab, ["", "a", "aa"])


def test_a_failed_fill_leaves_no_pending_entries(monkeypatch):
    """An exception while the walk's misses are filled (e.g. KeyboardInterrupt) must not
    leave table entries marked pending: later masks would read them as decided."""
    import potentials._mask_lexer as ml

    g = LarkGrammar('start: "(" NAME ("," NAME)* ")"\nNAME: /[a-z]+/')
    vocab = [b"(", b")", b",", b"ab", b"a", b"b,", b"(a"]
    masker = g.token_masker(vocab, [])
    real_fill = ml.SharedSegmentLexer.fill

    def failing(self, sids, classes):
        raise KeyboardInterrupt

    monkeypatch.setattr(ml.SharedSegmentLexer, "fill", failing)
    try:
        masker.bits("(")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(ml.SharedSegmentLexer, "fill", real_fill)
    for shared in masker._shared_lexers.values():
        assert not (shared.table == -3).any()
    for view in masker._lexers.values():
        assert not (view.live == -2).any()
    brute = LarkGrammar('start: "(" NAME ("," NAME)* ")"\nNAME: /[a-z]+/')
    for text in ["", "(", "(a", "(ab,"]:
        want = {i for i, v in enumerate(vocab) if brute.prefix(text + v.decode()) == 0.0}
        got = set(np.flatnonzero(unpack(masker.bits(text), len(vocab))).tolist())
        assert got == want, text


def test_walks_restart_and_resume_with_one_slot_arrays():
    """Event and miss arrays of one entry: every walk overflows, records what it can,
    fills it, and starts again (events) or resumes (misses). The masks of every shipped
    grammar still equal brute force on prefixes of accepted texts."""
    import random

    import grammars
    from potentials.grammar_mask import GrammarMask
    from tests import test_grammar_mask as T

    vocab, eos = T.VOCABS["tiny"]()
    for name in T.NAMES:
        file, _, start = name.partition(":")
        options = dict(T.LOAD_OPTIONS.get(file, {}), **({"start": start} if start else {}))
        masker = GrammarMask(LarkGrammar(grammars.load(file), **options), vocab, [eos])
        masker.walker.events = (np.empty(1, np.int64), np.empty(1, np.int64))
        masker.walker.misses = tuple(np.empty(1, np.int64) for _ in range(5))
        rng = random.Random(0)
        for text in T.ACCEPT[name][:2]:
            for cut in sorted({0, len(text)} | {rng.randrange(len(text) + 1) for _ in range(3)}):
                want = T.brute_allowed(name, "tiny", text[:cut])
                assert np.array_equal(masker.allowed(text[:cut]), want), (name, text[:cut])


def test_a_vocabulary_without_text_tokens_masks_only_eos():
    """Only special tokens (no character at all): the trie is its root, every lexer row
    stays dead, and the mask is EOS where the text is complete."""
    for grammar, complete in (('start: "a"*', {"", "a", "aa"}), ('start: "a"+', {"a", "aa"})):
        m = LarkGrammar(grammar).token_masker([None, None, None], [1])
        for text in ("", "a", "aa"):
            assert unpack(m.bits(text), 3).tolist() == [False, text in complete, False]
