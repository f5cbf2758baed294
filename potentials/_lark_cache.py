"""Lark's LALR(1) analysis of a grammar, cached on disk after the first build.

Building Lark's parser for the shipped SQL grammar takes ~0.4 s on a 2-core CPU (most of
it the LALR lookahead analysis); loading the same parser from Lark's own cache format
(``Lark(..., cache=path)``: a pickle with a hash of the grammar, options and Lark
version, rebuilt when it does not match or cannot be read) takes ~50 ms.  Lark's cache
does not keep the shift/reduce conflicts it resolved while analysing, which
``LarkGrammar(strict=True)`` reports, so they are kept beside it in a small JSON file;
the Lark cache is used only when that file exists, and both are written by a build.

Files: ``<folder>/<key>.lark`` and ``<key>.conflicts.json``, the key a hash of the grammar
text, start rule, case flag and the Lark and Python versions; the folder is
``$SMC_DECODE_GRAMMAR_CACHE`` when set (``0``/``off``/empty: no cache), else
``<cache_dir>/lark``.  A cache file that cannot be written (full disk, read-only folder)
only costs the speed-up.  The post-lexer (``GrammarIndenter``) is not stored: Lark takes
it again at every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import lark

_FORMAT = "lark-cache-2"  # part of the key: bump when what is stored changes
# (2: the LALR table is ours, _lalr_tables; a stock Lark table can hold extra lookaheads)
LOADED = "Loading grammar from cache"  # Lark's debug messages (lark.lark)
SAVED = "Saving grammar to cache"


def _root() -> Path | None:
    env = os.environ.get("SMC_DECODE_GRAMMAR_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "no", "false") else Path(env)
    from smc.models import cache_dir

    return cache_dir() / "lark"


def cache_file(grammar_text: str, start: str, ignore_case: bool) -> Path | None:
    """Where Lark's cache of this grammar lives (its conflicts: ``conflicts_file``), or
    None when caching is off."""
    root = _root()
    if root is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for part in (_FORMAT, lark.__version__, "{}.{}".format(*sys.version_info[:2]), start,
                 str(bool(ignore_case)), grammar_text):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return root / f"{digest.hexdigest()}.lark"


def conflicts_file(path: Path) -> Path:
    return path.with_suffix(".conflicts.json")


def known_conflicts(path: Path) -> list[str] | None:
    """The conflict lines a build of ``path``'s grammar logged, or None when no build left
    them (then Lark's cache file, if any, is removed: it must be rebuilt to learn them)."""
    try:
        with open(conflicts_file(path), encoding="utf-8") as f:
            lines = json.load(f)
        if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
            return lines
    except (OSError, ValueError):
        pass
    try:
        path.unlink()
    except OSError:
        pass
    return None


def remember_conflicts(path: Path, lines: list[str]) -> None:
    """Write the conflict lines atomically; a cache that cannot be written is only a
    missed speed-up."""
    target = conflicts_file(path)
    name = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".json",
                                         delete=False, encoding="utf-8") as f:
            name = f.name
            json.dump(lines, f)
        os.replace(name, target)
    except OSError:
        if name is not None:
            try:
                os.unlink(name)
            except OSError:
                pass


def was_loaded(log: list[str]) -> bool:
    """Whether Lark's messages say it loaded the parser from its cache (it logs a save
    after building, also after a cache file it could not read)."""
    return any(m.startswith(LOADED) for m in log) and not any(m.startswith(SAVED) for m in log)


def writable(path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path.parent, os.W_OK)
