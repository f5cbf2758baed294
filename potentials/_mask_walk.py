"""Numba loop of the token-mask compiler: a character trie walked against one lexer automaton.

``walk`` visits, depth first, the trie below each start node while a deterministic
automaton (``table[state, char class]``, −1 = dead) stays alive.  Every token that
ends at a visited node is allowed (its bit is set in ``bits``); every visited node
where the automaton may end the pending lexeme (``closable[state]``) and that has
children is reported as an *event* (node, state): the caller feeds the parser
there and continues below that node with the next lexer.

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
         start_nodes, start_states, start_emit, bits, ev_node, ev_state, n_events,
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
                if n_events == cap:
                    return -1, n_missing
                ev_node[n_events] = node
                ev_state[n_events] = state
                n_events += 1
            for j in range(lo, hi):
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
