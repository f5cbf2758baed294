"""The vocabulary as a character trie in flat arrays, shared by every grammar mask.

A token v with bytes b stands, after a text with no held-back bytes, for the
characters ``t(v) = complete_utf8(b)[0]``: its complete characters (a token that
ends inside a multi-byte character holds those bytes back, one that can never be
valid UTF-8 reads as U+FFFD).  Tokens are inserted at the node of t(v), so a
token with t(v) = "" (only held bytes) sits at the root.  Children are stored in
CSR form: node i's children are ``child_node[child_start[i]:child_start[i+1]]``
reached by characters ``alphabet[child_char[...]]``; tokens ending at node i are
``tok_ids[tok_start[i]:tok_start[i+1]]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from smc.token_bytes import complete_utf8


class VocabTrie:
    """Character trie of a vocabulary (special tokens and ``exclude`` left out)."""

    def __init__(self, vocab_bytes: Sequence[bytes | None], exclude: Iterable[int] = ()) -> None:
        skip = set(exclude)
        self.vocab_size = len(vocab_bytes)
        texts: dict[int, str] = {}
        for tid, data in enumerate(vocab_bytes):
            if data is None or tid in skip:
                continue
            texts[tid] = complete_utf8(data)[0]
        self.alphabet: list[str] = sorted({c for t in texts.values() for c in t})
        char_id = {c: i for i, c in enumerate(self.alphabet)}
        kids: list[dict[int, int]] = [{}]
        toks: list[list[int]] = [[]]
        for tid, text in texts.items():
            node = 0
            for ch in text:
                c = char_id[ch]
                nxt = kids[node].get(c)
                if nxt is None:
                    nxt = kids[node][c] = len(kids)
                    kids.append({})
                    toks.append([])
                node = nxt
            toks[node].append(tid)
        n = len(kids)
        self.n_nodes = n
        self.child_start = np.zeros(n + 1, np.int64)
        self.child_start[1:] = np.cumsum([len(k) for k in kids])
        self.child_char = np.empty(int(self.child_start[-1]), np.int64)
        self.child_node = np.empty(int(self.child_start[-1]), np.int64)
        for i, k in enumerate(kids):
            lo = self.child_start[i]
            for j, (c, child) in enumerate(sorted(k.items())):
                self.child_char[lo + j] = c
                self.child_node[lo + j] = child
        self.tok_start = np.zeros(n + 1, np.int64)
        self.tok_start[1:] = np.cumsum([len(t) for t in toks])
        self.tok_ids = np.fromiter((t for ts in toks for t in ts), np.int64,
                                   count=int(self.tok_start[-1]))
        self.n_tokens = len(texts)


_TRIES: dict[tuple[str, tuple[int, ...]], VocabTrie] = {}


def vocab_trie(vocab_bytes: Sequence[bytes | None], exclude: Iterable[int] = ()) -> VocabTrie:
    """The (memoised) trie of a vocabulary: one build per distinct vocabulary."""
    skip = tuple(sorted(set(exclude)))
    digest = hashlib.blake2b(digest_size=16)
    for data in vocab_bytes:
        digest.update(b"\x00N" if data is None else len(data).to_bytes(4, "little") + data)
    key = (digest.hexdigest(), skip)
    trie = _TRIES.get(key)
    if trie is None:
        trie = _TRIES[key] = VocabTrie(vocab_bytes, skip)
    return trie
