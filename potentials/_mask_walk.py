"""Numba loops of the token-mask compiler: a character trie walked against one lexer automaton.

``walk`` visits the trie below each start node while a deterministic automaton
(``table[state, char class]``, −1 = dead) stays alive and its state is *live* in the
walking context (``live[state]`` > 0).  Every token that ends at a visited node is
allowed (its bit is set in ``bits``); every visited node where the automaton may end
the pending lexeme and that has a child a next lexeme may start
with (``opens[state, class]``: the constraints that ending the lexeme leaves allow it)
is reported as an *event* (node, state): the caller feeds the parser there and
continues below that node with the next lexer.

The trie is numbered in preorder, so a subtree is the id range [i, ``end[i]``) and a
walk is one forward scan: a node's state is its parent's stepped on the node's class,
and a dead node skips its subtree in one jump.  No recursion, and the arrays are read
front to back.

The automaton is tabulated lazily: a transition not computed yet (``UNKNOWN``), or a
state whose liveness the context has not decided yet (``live`` −1), is reported as a
*miss* (node, parent state) and its subtree skipped.  The caller computes what was
missing and resumes the walk from the missed nodes only, so a walk that discovers its
automaton as it goes still visits each (node, state) once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DEAD_STATE = -1  # table entry: the automaton dies on this class
UNKNOWN = -2  # table entry: not computed yet (reported, the caller fills it and resumes)
PENDING = -3  # table entry: reported unknown in this walk already (the caller fills it)


@njit(cache=True, nogil=True)
def walk(trie, lexer, start_nodes, start_states, start_emit, bits, events, n_events, misses,
         stack):  # pragma: no cover - jit
    """Visit the trie below each (start node, state); return (events, misses, pairs, asks).

    ``trie`` = (end, depth, node_class, child_start, edge_class, kid_bits, sub_bits,
    class_bits, tok_start, tok_ids, held) (``held``: see ``held_state``) and ``lexer`` =
    (table, live, open_rows, open_row, opens_bits), with ``opens[s, c]`` =
    ``open_rows[open_row[s], c]`` (see the module docstring); ``kid_bits[i]``,
    ``sub_bits[i]``, ``opens_bits[s]`` summarise i's child classes, the classes of every
    node below i, and the classes s opens as 64-bit sets (``class_bits[c]``: one bit per
    frequent class, bit 63 shared by the rest), so most nodes skip the exact event check.

    A *uniform* subtree is skipped whole: when every class below node i steps i's state
    s to s (``loop_bits``) and s opens none of them, every node below is in state s, has
    no event and no miss, so all its tokens are allowed (e.g. the inside of a string
    literal: 100k node visits become ~10k).
    Tokens at a start node are allowed only where ``start_emit`` says so.  Events
    (``events`` = (nodes, states)) are appended after the ``n_events`` already there.

    A node the walk cannot decide is a *miss*, recorded in ``misses`` = (nodes, parent
    states, pair states, pair classes, asked states): its transition is unknown — the
    entry is set ``PENDING`` and the pair recorded once — or its state's liveness is
    (``live`` set −2, the state recorded once).  A count of −1 means its array is too
    small: the walk stopped early (what was recorded is valid) and is to be run again.
    ``stack`` (one slot per trie depth) holds the state of the node last visited at each
    depth: in preorder that is the parent of the next node one level deeper.  Visited
    nodes form runs of consecutive ids, whose tokens are consecutive in ``tok_ids``: a
    run's bits are set when a dead subtree (or the end) closes it.
    """
    end, depth, node_class, child_start, edge_class, kid_bits, sub_bits, class_bits, \
        tok_start, tok_ids, held = trie
    n_char, held_start, held_cls = held[0][0], held[1], held[2]
    table, live, open_rows, open_row, opens_bits = lexer
    ev_node, ev_state = events
    miss_node, miss_state, pair_state, pair_class, asked = misses
    n_missing = n_pairs = n_asked = 0
    cap = ev_node.shape[0]
    miss_cap = miss_node.shape[0]
    loops = np.zeros(table.shape[0], np.uint64)  # loop_bits of the states met, ...
    looped = np.zeros(table.shape[0], np.bool_)  # ... computed once per walk
    for k in range(start_nodes.shape[0]):
        root = start_nodes[k]
        stop = end[root]
        state = start_states[k]
        stack[depth[root]] = state
        run = root if start_emit[k] else root + 1  # tokens of [run, i) not set yet
        i = root
        while i < stop:
            if i != root:
                d = depth[i]
                ps = stack[d - 1]
                c = node_class[i]
                if c < n_char:
                    s = table[ps, c]
                    undecided = s == UNKNOWN or s == PENDING or (s >= 0 and live[s] < 0)
                else:  # a held edge: alive iff some class its bytes may become is
                    s = held_state(ps, c - n_char, table, live, held)
                    undecided = s == UNKNOWN
                if s < 0 or live[s] <= 0:
                    if undecided:
                        lo, hi = c, c + 1
                        if c >= n_char:
                            lo, hi = held_start[c - n_char], held_start[c - n_char + 1]
                        if n_missing == miss_cap or n_pairs + hi - lo > miss_cap \
                                or n_asked + hi - lo > miss_cap:
                            return n_events, -1, n_pairs, n_asked
                        for h in range(lo, hi):
                            cc = c if c < n_char else held_cls[h]
                            s2 = table[ps, cc]
                            if s2 == UNKNOWN:
                                table[ps, cc] = PENDING
                                pair_state[n_pairs] = ps
                                pair_class[n_pairs] = cc
                                n_pairs += 1
                            elif s2 >= 0 and live[s2] == -1:
                                live[s2] = -2
                                asked[n_asked] = s2
                                n_asked += 1
                        miss_node[n_missing] = i
                        miss_state[n_missing] = ps
                        n_missing += 1
                    set_tokens(bits, tok_ids, tok_start[run], tok_start[i])
                    i = end[i]
                    run = i
                    continue
                state = s
                stack[d] = s
            if kid_bits[i] & opens_bits[state]:  # maybe an event: check exactly
                for j in range(child_start[i], child_start[i + 1]):
                    if open_rows[open_row[state], edge_class[j]]:
                        if n_events == cap:
                            return -1, n_missing, n_pairs, n_asked
                        ev_node[n_events] = i
                        ev_state[n_events] = state
                        n_events += 1
                        break
            below = sub_bits[i]
            if below and not below & opens_bits[state] and live[state] > 0:
                if not looped[state]:
                    loops[state] = loop_bits(table, state, class_bits)
                    looped[state] = True
                if not below & ~loops[state]:  # uniform: its tokens stay in the run
                    i = end[i]
                    continue
            i += 1
        set_tokens(bits, tok_ids, tok_start[run], tok_start[stop])
    return n_events, n_missing, n_pairs, n_asked


@njit(cache=True, nogil=True)
def set_tokens(bits, tok_ids, lo, hi):  # pragma: no cover - jit
    """Set the bits of the tokens ``tok_ids[lo:hi]`` (bit t & 31 of word t >> 5)."""
    for j in range(lo, hi):
        t = tok_ids[j]
        bits[t >> 5] |= np.uint32(1) << np.uint32(t & 31)


@njit(cache=True, nogil=True)
def loop_bits(table, s, class_bits):  # pragma: no cover - jit
    """The class bits (``class_bits``, several classes may share one) all of whose classes
    step state ``s`` to itself.  Entries not known yet and held-edge columns (past the
    table's, never stored) count as not looping."""
    every = np.uint64(0)
    fails = np.uint64(0)
    for c in range(class_bits.shape[0]):
        every |= class_bits[c]
        if c >= table.shape[1] or table[s, c] != s:
            fails |= class_bits[c]
    return every & ~fails


@njit(cache=True, nogil=True)
def held_state(ps, k, table, live, held):  # pragma: no cover - jit
    """The state a held edge k leads to from ``ps``: that of the first class its held bytes
    may become whose state is live here (the edge's leaf has no children: any will do),
    ``DEAD_STATE`` when none is, ``UNKNOWN`` while some transition or liveness is not
    decided yet.  ``held`` = ([number of character classes], start, classes) in CSR form.
    Liveness depends on the context, so a held column is resolved per walk, never stored
    in the shared table."""
    held_start, held_cls = held[1], held[2]
    undecided = False
    for h in range(held_start[k], held_start[k + 1]):
        s2 = table[ps, held_cls[h]]
        if s2 >= 0:
            if live[s2] > 0:
                return s2
            if live[s2] < 0:
                undecided = True
        elif s2 == UNKNOWN or s2 == PENDING:
            undecided = True
    return UNKNOWN if undecided else DEAD_STATE


@njit(cache=True, nogil=True)
def resume(misses, n_missing, node_class, table, live, held):  # pragma: no cover - jit
    """Where a walk goes on after its misses were filled: (nodes, states) of the missed
    nodes whose state is now known and live, and the states whose liveness is still
    to be decided (marked −2 in ``live``; decide them and call again)."""
    miss_node, miss_state = misses[0], misses[1]
    n_char, held_start, held_cls = held[0][0], held[1], held[2]
    asked = np.empty(n_missing + held_cls.shape[0], np.int64)
    n_asked = 0
    nodes = np.empty(n_missing, np.int64)
    states = np.empty(n_missing, np.int64)
    n = 0
    for m in range(n_missing):
        ps = miss_state[m]
        c = node_class[miss_node[m]]
        lo, hi = c, c + 1
        if c >= n_char:
            lo, hi = held_start[c - n_char], held_start[c - n_char + 1]
        s = DEAD_STATE
        for h in range(lo, hi):
            s2 = table[ps, c if c < n_char else held_cls[h]]
            if s2 < 0:
                continue
            if live[s2] == -1:
                if n_asked < asked.shape[0]:  # when full, the next call asks the rest
                    live[s2] = -2
                    asked[n_asked] = s2
                    n_asked += 1
            elif live[s2] > 0:
                s = s2
                break
        if n_asked == 0 and s >= 0:
            nodes[n] = miss_node[m]
            states[n] = s
            n += 1
    return nodes[:n], states[:n], asked[:n_asked]


@njit(cache=True, nogil=True)
def event_states(ev_state, n, n_states):  # pragma: no cover - jit
    """The distinct lexer states among the first ``n`` events, ascending."""
    seen = np.zeros(n_states, np.bool_)
    count = 0
    for i in range(n):
        s = ev_state[i]
        if not seen[s]:
            seen[s] = True
            count += 1
    out = np.empty(count, np.int64)
    k = 0
    for s in range(n_states):
        if seen[s]:
            out[k] = s
            k += 1
    return out


@njit(cache=True, nogil=True)
def group_events(ev_node, ev_state, n, key_start, key_ids, n_keys, marks):  # pragma: no cover
    """Nodes of the events by group key: group g's distinct nodes, ascending, are
    ``nodes[offsets[g]:offsets[g + 1]]``.

    An event in lexer state s belongs to every key ``key_ids[key_start[s]:key_start[s+1]]``.
    ``marks`` (one zero byte per trie node) is scratch and is left all zero.  Small groups
    are sorted; large ones are read back in order from ``marks``, O(node range).
    """
    counts = np.zeros(n_keys + 1, np.int64)
    for i in range(n):
        s = ev_state[i]
        for j in range(key_start[s], key_start[s + 1]):
            counts[key_ids[j] + 1] += 1
    starts = np.cumsum(counts)
    buf = np.empty(starts[n_keys], np.int64)
    pos = starts[:n_keys].copy()
    for i in range(n):
        s = ev_state[i]
        for j in range(key_start[s], key_start[s + 1]):
            g = key_ids[j]
            buf[pos[g]] = ev_node[i]
            pos[g] += 1
    nodes = np.empty(starts[n_keys], np.int64)
    offsets = np.zeros(n_keys + 1, np.int64)
    w = 0
    for g in range(n_keys):
        lo, hi = starts[g], starts[g + 1]
        m = hi - lo
        if m * 1024 < marks.shape[0]:  # a sort beats scanning the node range
            part = np.sort(buf[lo:hi])
            prev = -1
            for x in part:
                if x != prev:
                    nodes[w] = x
                    w += 1
                    prev = x
        else:
            first = marks.shape[0]
            last = -1
            for k in range(lo, hi):
                x = buf[k]
                marks[x] = 1
                if x < first:
                    first = x
                if x > last:
                    last = x
            for x in range(first, last + 1):
                if marks[x]:
                    marks[x] = 0
                    nodes[w] = x
                    w += 1
        offsets[g + 1] = w
    return nodes[:w], offsets
