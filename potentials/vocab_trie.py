"""The vocabulary as a character trie in flat arrays, shared by every grammar mask.

A token v with bytes b stands, after a text with no held-back bytes, for the
characters ``t(v) = complete_utf8(b)[0]``: its complete characters (a token that
ends inside a multi-byte character holds those bytes back, one that can never be
valid UTF-8 reads as U+FFFD).  Tokens are inserted at the node of t(v).  A token
that holds bytes h back, where h is narrowed (``held_chars.narrows``: at most 4,096
characters start with h), hangs instead below t(v)'s node on a *held edge*: a virtual
character ``len(alphabet) + k`` for ``held_keys[k] = h``, which a grammar mask
follows iff some character starting with h can follow (so ``prefix_held``).  Other
held tokens (lone 4-byte lead bytes) sit at t(v)'s node, e.g. the root.  Children are
stored in CSR form: node i's children are ``child_node[child_start[i]:child_start[i+1]]``
reached by characters ``alphabet[child_char[...]]`` (held edges: ids past the
alphabet); tokens ending at node i are ``tok_ids[tok_start[i]:tok_start[i+1]]``.
Nodes are numbered in preorder, so i's subtree is the id range [i, ``end[i]``);
``parent[i]`` and ``node_char[i]`` (the character of the edge into i) let a walk scan
a subtree forward (``_mask_walk.walk``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from potentials.held_chars import narrows
from smc.token_bytes import complete_utf8


class VocabTrie:
    """Character trie of a vocabulary (special tokens and ``exclude`` left out)."""

    def __init__(self, vocab_bytes: Sequence[bytes | None], exclude: Iterable[int] = ()) -> None:
        skip = set(exclude)
        self.vocab_size = len(vocab_bytes)
        texts: dict[int, str] = {}
        tails: dict[int, bytes] = {}
        for tid, data in enumerate(vocab_bytes):
            if data is None or tid in skip:
                continue
            texts[tid], n_held = complete_utf8(data)
            if n_held and narrows(data[len(data) - n_held:]):
                tails[tid] = data[len(data) - n_held:]
        self.alphabet: list[str] = sorted({c for t in texts.values() for c in t})
        self.held_keys: list[bytes] = sorted(set(tails.values()))
        char_id = {c: i for i, c in enumerate(self.alphabet)}
        held_id = {h: len(self.alphabet) + k for k, h in enumerate(self.held_keys)}
        # Inserting the paths in lexicographic order creates the nodes in depth-first
        # preorder with children by character (a walk then reads the arrays front to
        # back: measured 5x fewer stalls than insertion order): a node is a new one iff
        # it lies past the longest common prefix with the previous path.
        paths = []
        code = char_id.__getitem__
        for tid, text in texts.items():
            path = list(map(code, text))
            if tid in tails:
                path.append(held_id[tails[tid]])
            paths.append((path, tid))
        paths.sort()
        parent, node_char, tok_of = [0], [0], []
        end = [0]                         # a node's subtree is [i, end[i]): set when closed
        stack = [0]                       # node of each prefix of the previous path
        prev: list[int] = []
        for path, _tid in paths:
            common = 0
            limit = min(len(path), len(prev))
            while common < limit and path[common] == prev[common]:
                common += 1
            for closed in stack[common + 1:]:
                end[closed] = len(parent)
            del stack[common + 1:]
            for c in path[common:]:
                stack.append(len(parent))
                parent.append(stack[-2])
                node_char.append(c)
                end.append(0)
            tok_of.append(stack[-1])
            prev = path
        n = len(parent)
        for closed in stack:
            end[closed] = n
        self.n_nodes = n
        self.parent = np.asarray(parent, np.int32)
        self.node_char = np.asarray(node_char, np.int32)
        self.end = np.asarray(end, np.int32)
        # children in CSR form: nodes 1..n-1 grouped by parent (preorder keeps each
        # group's order = character order)
        kids = np.argsort(self.parent[1:], kind="stable").astype(np.int32) + 1
        self.child_node = kids
        self.child_char = self.node_char[kids]
        self.child_start = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(self.parent[1:], minlength=n), out=self.child_start[1:])
        # tokens by node (tok_of is non-decreasing: the paths were inserted in order)
        self.tok_ids = np.asarray([tid for _path, tid in paths], np.int32)
        self.tok_start = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(np.asarray(tok_of, np.int64), minlength=n),
                  out=self.tok_start[1:])
        self.tok_node = np.full(self.vocab_size, -1, np.int32)  # node of each token (−1: none)
        self.tok_node[self.tok_ids] = np.asarray(tok_of, np.int32)
        self.n_tokens = len(texts)
        self.depth = max((len(t) for t in texts.values()), default=0)


_TRIES: dict[tuple[str, tuple[int, ...]], VocabTrie] = {}
_FORMAT = b"held-edges-preorder-scan-5"  # part of the disk cache key: bump when the layout changes
_ARRAYS = ("child_start", "child_char", "child_node", "parent", "node_char", "end",
           "tok_start", "tok_ids", "tok_node")


def _cache_file(key: str) -> Path:
    from smc.models import cache_dir

    return cache_dir() / "vocab-tries" / f"{key}.npz"


def _save(trie: VocabTrie, path: Path) -> None:
    """Write atomically; a cache that cannot be written is only a missed speed-up."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
            np.savez(f, alphabet=np.array(trie.alphabet, dtype=object),
                     held_keys=np.array(trie.held_keys, dtype=object), sizes=np.array(
                [trie.vocab_size, trie.n_nodes, trie.n_tokens, trie.depth]),
                **{a: getattr(trie, a) for a in _ARRAYS})
        os.replace(f.name, path)
    except OSError:
        pass


def _load(path: Path) -> VocabTrie | None:
    try:
        with np.load(path, allow_pickle=True) as data:
            trie = VocabTrie.__new__(VocabTrie)
            for a in _ARRAYS:
                setattr(trie, a, data[a])
            trie.alphabet = [str(c) for c in data["alphabet"]]
            trie.held_keys = [bytes(h) for h in data["held_keys"]]
            trie.vocab_size, trie.n_nodes, trie.n_tokens, trie.depth = (
                int(x) for x in data["sizes"])
            return trie
    except (OSError, ValueError, KeyError):
        return None


def vocab_trie(vocab_bytes: Sequence[bytes | None], exclude: Iterable[int] = ()) -> VocabTrie:
    """The trie of a vocabulary: built once, memoised in the process and cached on disk
    (``<cache_dir>/vocab-tries/<content hash>.npz``)."""
    skip = tuple(sorted(set(exclude)))
    digest = hashlib.blake2b(digest_size=16)
    for data in vocab_bytes:
        digest.update(b"\x00N" if data is None else len(data).to_bytes(4, "little") + data)
    digest.update(repr(skip).encode() + _FORMAT)
    key = (digest.hexdigest(), skip)
    trie = _TRIES.get(key)
    if trie is None:
        path = _cache_file(key[0])
        trie = _load(path) if path.is_file() else None
        if trie is None:
            trie = VocabTrie(vocab_bytes, skip)
            _save(trie, path)
        _TRIES[key] = trie
    return trie
