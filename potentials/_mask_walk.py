"""Numba loop of the token-mask compiler: a character trie walked against one lexer automaton.

``walk`` visits, depth first, the trie below each start node while a deterministic
automaton (``table[state, char class]``, −1 = dead) stays alive.  Every token that
ends at a visited node is allowed (its bit is set in ``bits``); every visited node
where the automaton may end the pending lexeme (``closable[state]``) and that has
children is reported as an *event* (node, state): the caller feeds the parser
there and continues below that node with the next lexer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DEAD_STATE = -1  # table entry: the automaton dies on this class
UNKNOWN = -2  # table entry: not computed yet (reported, the caller fills it and reruns)


@njit(cache=True, nogil=True)
def walk(child_start, child_char, child_node, tok_start, tok_ids, char_class, table, closable,
         starts, start_state, emit_start, bits, ev_node, ev_state, miss_state,
         miss_class):  # pragma: no cover - jit
    """Fill ``bits`` and the event arrays; return (events, unknown transitions met).

    Events −1: the event arrays are too small.  Unknown transitions (at most the size
    of the miss arrays, distinct not guaranteed) make the result incomplete.
    """
    n_events = 0
    n_missing = 0
    cap = ev_node.shape[0]
    stack_node = np.empty(child_start.shape[0], np.int64)
    stack_state = np.empty(child_start.shape[0], np.int64)
    for k in range(starts.shape[0]):
        root = starts[k]
        top = 0
        stack_node[0] = root
        stack_state[0] = start_state
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
                cls = char_class[child_char[j]]
                nxt = table[state, cls]
                if nxt == -2:
                    if n_missing < miss_state.shape[0]:
                        miss_state[n_missing] = state
                        miss_class[n_missing] = cls
                        n_missing += 1
                    continue
                if nxt >= 0:
                    stack_node[top] = child_node[j]
                    stack_state[top] = nxt
                    top += 1
    return n_events, n_missing
