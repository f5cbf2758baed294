"""Numba loop of the token-mask compiler: a character trie walked against one lexer automaton.

``walk`` visits, depth first, the trie below each start node while a deterministic
automaton (``table[state, char class]``, −1 = dead) stays alive.  Every token that
ends at a visited node is allowed (its bit is set in ``bits``); every visited node
where the automaton may end the pending lexeme (``closable[state]``) and that has a
child a next lexeme may start with (``opens[state, class]``: the constraints that
ending the lexeme leaves allow it) is reported as an *event* (node, state): the
caller feeds the parser there and continues below that node with the next lexer.
Children are pushed last first, so nodes are visited in increasing id (the trie is
numbered in preorder): the arrays are read front to back.

The automaton is tabulated lazily: a transition not computed yet (``UNKNOWN``) is
reported as a *miss* (trie edge, state) and not followed.  The caller computes the
missed transitions and resumes the walk from the missed edges only, so a walk that
discovers its automaton as it goes still visits each (node, state) once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DEAD_STATE = -1  # table entry: the automaton dies on this class
UNKNOWN = -2  # table entry: not computed yet (reported, the caller fills it and resumes)


@njit(cache=True, nogil=True)
def walk(child_start, child_char, child_node, tok_start, tok_ids, char_class, table, closable,
         opens, start_nodes, start_states, start_emit, bits, ev_node, ev_state, n_events,
         miss_edge, miss_state):  # pragma: no cover - jit
    """Visit the trie below each (start node, state); return (events, misses).

    Tokens at a start node are allowed only where ``start_emit`` says so.  Events are
    appended after the ``n_events`` already in ``ev_node``/``ev_state``; the returned
    count includes them.  Events −1: the event arrays are too small.  Misses −1: the
    miss arrays are too small (the recorded misses are still valid).  Either way the
    walk is incomplete and the caller starts it again with larger arrays.
    """
    n_missing = 0
    cap = ev_node.shape[0]
    miss_cap = miss_edge.shape[0]
    stack_node = np.empty(child_start.shape[0], np.int64)
    stack_state = np.empty(child_start.shape[0], np.int64)
    for k in range(start_nodes.shape[0]):
        root = start_nodes[k]
        emit_start = start_emit[k]
        stack_node[0] = root
        stack_state[0] = start_states[k]
        top = 1
        while top > 0:
            top -= 1
            node = stack_node[top]
            state = stack_state[top]
            if node != root or emit_start:
                for j in range(tok_start[node], tok_start[node + 1]):
                    t = tok_ids[j]
                    bits[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            lo = child_start[node]
            hi = child_start[node + 1]
            if lo == hi:
                continue
            if closable[state]:
                for j in range(lo, hi):
                    if opens[state, char_class[child_char[j]]]:
                        if n_events == cap:
                            return -1, n_missing
                        ev_node[n_events] = node
                        ev_state[n_events] = state
                        n_events += 1
                        break
            for j in range(hi - 1, lo - 1, -1):  # last pushed, first popped: preorder
                nxt = table[state, char_class[child_char[j]]]
                if nxt == -2:
                    if n_missing == miss_cap:
                        return n_events, -1
                    miss_edge[n_missing] = j
                    miss_state[n_missing] = state
                    n_missing += 1
                elif nxt >= 0:
                    stack_node[top] = child_node[j]
                    stack_state[top] = nxt
                    top += 1
    return n_events, n_missing


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
