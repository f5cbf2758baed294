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
``node_depth[i]`` and ``node_char[i]`` (the character of the edge into i) let a walk
scan a subtree forward (``_mask_walk.walk``); ``parent[i]`` is i's parent.
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
        ids = [t for t, d in enumerate(vocab_bytes) if d is not None and t not in skip]
        datas = [vocab_bytes[t] for t in ids]
        # decoded at C speed; bytes that are not whole UTF-8 come out as lone surrogates
        # U+DC80..U+DCFF (never in a strict decoding): those tokens are read again
        texts = [d.decode("utf-8", "surrogateescape") for d in datas]
        lens, codes = _code_points(texts)
        escaped = np.flatnonzero((codes >= 0xDC80) & (codes <= 0xDCFF))
        tails: dict[int, bytes] = {}  # index in ids -> held bytes on a held edge
        if len(escaped):
            for k in np.unique(np.searchsorted(np.cumsum(lens), escaped, "right")).tolist():
                texts[k], n_held = complete_utf8(datas[k])
                if n_held and narrows(datas[k][len(datas[k]) - n_held:]):
                    tails[k] = datas[k][len(datas[k]) - n_held:]
            lens, codes = _code_points(texts)
        tids = np.asarray(ids, np.int64)
        alphabet = np.flatnonzero(np.bincount(codes)) if len(codes) else codes
        self.alphabet: list[str] = [chr(c) for c in alphabet.tolist()]
        self.held_keys: list[bytes] = sorted(set(tails.values()))
        held_id = {h: len(alphabet) + k for k, h in enumerate(self.held_keys)}
        # a token's path: its characters' ids (code point order), then its held edge
        has_held = np.zeros(len(texts), np.bool_)
        has_held[list(tails)] = True
        plen = lens + has_held
        poff = np.zeros(len(plen) + 1, np.int64)
        np.cumsum(plen, out=poff[1:])
        path = np.empty(poff[-1], np.int64)
        owner = np.repeat(np.arange(len(lens)), lens)
        coff = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=coff[1:])
        char_id = np.zeros(int(alphabet[-1]) + 1 if len(alphabet) else 0, np.int64)
        char_id[alphabet] = np.arange(len(alphabet))
        path[poff[owner] + np.arange(len(codes)) - coff[owner]] = char_id[codes]
        path[poff[1:][has_held] - 1] = [held_id[tails[k]] for k in np.flatnonzero(has_held)]
        order = _lexicographic_order(path, poff, plen)
        self.n_tokens = len(texts)
        self.depth = int(lens.max(initial=0))
        self._build(path, poff[order], plen[order], tids[order])

    def _build(self, path: np.ndarray, off: np.ndarray, plen: np.ndarray,
               tids: np.ndarray) -> None:
        """The arrays from the paths ``path[off[i]:off[i] + plen[i]]``, sorted.

        Path i shares its first ``lcp[i]`` nodes with path i − 1 and creates the rest,
        numbered in order (preorder).  Depth by depth, over the paths that long: a node
        at depth q is the one the last path that created a depth-q node made.
        """
        n_paths = len(plen)
        lcp = np.zeros(n_paths, np.int64)
        if n_paths > 1:  # longest common prefix with the previous path
            live = np.flatnonzero(np.minimum(plen[1:], plen[:-1]) > 0) + 1
            q = 0
            while len(live):
                same = path[off[live] + q] == path[off[live - 1] + q]
                live = live[same]
                lcp[live] += 1
                q += 1
                live = live[np.minimum(plen[live], plen[live - 1]) > q]
        new = plen - lcp
        base = np.ones(n_paths, np.int64)  # id of the first node path i creates
        np.cumsum(new[:-1], out=base[1:])
        base[1:] += 1
        n = int(base[-1] + new[-1]) if n_paths else 1
        parent = np.zeros(n, np.int32)
        node_char = np.zeros(n, np.int32)
        depth = np.zeros(n, np.int64)
        path_node = np.zeros(len(path), np.int64)  # node at each position of each path
        rows = np.flatnonzero(plen > 0)  # paths with a node at depth q
        q = 0
        while len(rows):
            made = lcp[rows] <= q  # row creates its depth-q node, else shares its previous
            pick = np.where(made, np.arange(len(rows)), 0)
            np.maximum.accumulate(pick, out=pick)
            maker = rows[pick]
            nodes = base[maker] + q - lcp[maker]
            at = off[rows] + q
            path_node[at] = nodes
            fresh, at_fresh = nodes[made], at[made]
            parent[fresh] = path_node[at_fresh - 1] if q else 0
            node_char[fresh] = path[at_fresh]
            depth[fresh] = q + 1
            q += 1
            rows = rows[plen[rows] > q]
        size = np.ones(n, np.int64)  # subtree sizes, deepest nodes first
        for nodes in levels_deepest_first(depth):
            np.add.at(size, parent[nodes], size[nodes])
        self.n_nodes = n
        self.parent = parent
        self.node_char = node_char
        self.node_depth = depth.astype(np.int32)  # characters (and held edge) from the root
        self.end = (np.arange(n) + size).astype(np.int32)  # a subtree is [i, end[i])
        # children in CSR form: nodes 1..n-1 grouped by parent (preorder keeps each
        # group's order = character order)
        kids = np.argsort(self.parent[1:], kind="stable").astype(np.int32) + 1
        self.child_node = kids
        self.child_char = self.node_char[kids]
        self.child_start = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(self.parent[1:], minlength=n), out=self.child_start[1:])
        # tokens by node (their nodes are non-decreasing: the paths are in order)
        tok_of = np.zeros(n_paths, np.int64)
        tok_of[plen > 0] = path_node[(off + plen - 1)[plen > 0]]
        self.tok_ids = tids.astype(np.int32)
        self.tok_start = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(tok_of, minlength=n), out=self.tok_start[1:])
        self.tok_node = np.full(self.vocab_size, -1, np.int32)  # node of each token (−1: none)
        self.tok_node[self.tok_ids] = tok_of


def levels_deepest_first(depth: np.ndarray) -> list[np.ndarray]:
    """The node ids of each depth (``depth`` per node), deepest level first, the root's
    level left out: one sort, so bottom-up passes cost O(nodes), not O(nodes × depth)."""
    order = np.argsort(depth, kind="stable")
    cuts = np.searchsorted(depth[order], np.arange(1, int(depth.max(initial=0)) + 1))
    return np.split(order, cuts)[:0:-1]


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(length of each text, all their code points concatenated)."""
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    return lens, codes


_MATRIX_CELLS = 1 << 25  # above this many padded cells, sort in Python


def _lexicographic_order(path: np.ndarray, off: np.ndarray, plen: np.ndarray) -> np.ndarray:
    """Stable order of the paths ``path[off[i]:off[i] + plen[i]]`` as sequences (a path
    before the paths it prefixes).

    Sorted paths give the trie's nodes in depth-first preorder with children by character
    (a walk then reads the arrays front to back: measured 5x fewer stalls than insertion
    order).  Each path, its ids + 1 padded with zeros, is read as a NumPy UCS4 string,
    which compares code units in order, the padding as a shorter string.
    """
    n, width = len(plen), max(1, int(plen.max(initial=0)))
    if n * width <= _MATRIX_CELLS:
        rows = np.zeros((n, width), np.uint32)
        at = np.repeat(np.arange(n) * width - off[:-1], plen) + np.arange(len(path))
        rows.reshape(-1)[at] = path + 1
        return np.argsort(rows.view(f"<U{width}").reshape(-1), kind="stable")
    raw = path.astype(">u4").tobytes()  # big-endian ids compare as bytes like the lists
    keys = [raw[4 * a:4 * b] for a, b in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)]
    return np.asarray(sorted(range(n), key=keys.__getitem__), np.int64)


_TRIES: dict[tuple[str, tuple[int, ...]], VocabTrie] = {}
_FORMAT = b"held-edges-preorder-scan-6"  # part of the disk cache key: bump when the layout changes
_ARRAYS = ("child_start", "child_char", "child_node", "parent", "node_char", "node_depth", "end",
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
