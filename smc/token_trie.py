"""A byte trie over the vocabulary, walked against a potential to get token masks.

For a particle with text x (plus ``held`` bytes of an unfinished UTF-8
character), the constraint's factor for token v is

    log c(v | x) = prefix(x · v) − prefix(x)

The walk visits the trie depth-first and prunes a whole subtree as soon as
``prefix`` is −inf there (every extension of an impossible prefix is impossible),
so only viable tokens and their first failing bytes are ever scored.  Potentials
see whole characters: a token that ends inside a character is scored by
``prefix_held`` (can a character starting with those bytes follow?).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from potentials.base import NEG_INF, Potential, check_log_weight
from smc.token_bytes import complete_utf8


class TokenTrie:
    """Children and ending tokens of every byte prefix of the vocabulary."""

    def __init__(self, vocab_bytes: list[bytes | None], exclude: Iterable[int] = ()) -> None:
        skip = set(exclude)
        self.children: list[dict[int, int]] = [{}]
        self.tokens: list[list[int]] = [[]]
        for tid, data in enumerate(vocab_bytes):
            if data is None or tid in skip:
                continue
            node = 0
            for byte in data:
                nxt = self.children[node].get(byte)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][byte] = nxt
                    self.children.append({})
                    self.tokens.append([])
                node = nxt
            self.tokens[node].append(tid)

    @property
    def n_nodes(self) -> int:
        return len(self.children)

    def walk(self, potential: Potential, text: str, held: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Token ids with c(v | x) > 0 and their log prefix(x·v) (not yet minus prefix(x)).

        A token that ends inside a character (bytes h held back after its text t) is
        scored ``prefix_held(x·t, h)``: some character starting with h must be able to
        follow (a grammar checks that; other potentials bound it by prefix(x·t))."""
        ids: list[int] = []
        vals: list[float] = []
        root_text, n_root = complete_utf8(held) if held else ("", 0)
        root_val = check_log_weight(potential.prefix(text + root_text), f"{potential!r}.prefix")
        if root_val == NEG_INF:
            return np.empty(0, np.int64), np.empty(0)
        # stack entries: (node, bytes so far incl. held, decoded suffix, value of the text,
        # the bytes held back at the end)
        stack = [(0, held, root_text, root_val, held[len(held) - n_root:] if n_root else b"")]
        children, tokens = self.children, self.tokens
        prefix = potential.prefix
        held_values: dict[tuple[str, bytes], float] = {}
        while stack:
            node, data, decoded, value, tail = stack.pop()
            if tail:  # inside a character: can one that starts with these bytes follow?
                key = (decoded, tail)
                here = held_values.get(key)
                if here is None:
                    here = held_values[key] = check_log_weight(
                        potential.prefix_held(text + decoded, tail),
                        f"{potential!r}.prefix_held")
            else:
                here = value
            if tokens[node] and here != NEG_INF:  # (children are scored on their own:
                # one may decode to U+FFFD instead of completing the held character)
                ids.extend(tokens[node])
                vals.extend([here] * len(tokens[node]))
            for byte, child in children[node].items():
                cdata = data + bytes((byte,))
                cdecoded, n_held = complete_utf8(cdata)
                if cdecoded == decoded:
                    cvalue = value
                else:
                    cvalue = prefix(text + cdecoded)
                    if cvalue == NEG_INF:
                        continue
                    cvalue = check_log_weight(cvalue, f"{potential!r}.prefix")
                stack.append((child, cdata, cdecoded, cvalue,
                              cdata[len(cdata) - n_held:] if n_held else b""))
        return np.asarray(ids, np.int64), np.asarray(vals, np.float64)

