"""Tree-sitter potential: Φ(x) = 1 when tree-sitter parses ``x`` without ERROR or MISSING nodes."""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections import OrderedDict
from collections.abc import Callable

import tree_sitter

from potentials.base import NEG_INF, Potential

SCHEDULES = ("line", "always")
PREFIX_CHECKS = ("viable", "none")

_LEX_START = re.compile(r"lex_(?:internal|external) state:\d+, row:(\d+), column:(\d+)$")
_ADVANCE = re.compile(r"(consume|skip) character:(?:'(.)'|(\d+))$", re.S)


def installed_languages() -> list[str]:
    """Names ``n`` for which a ``tree_sitter_<n>`` module is importable."""
    return sorted(m.name[len("tree_sitter_"):] for m in pkgutil.iter_modules()
                  if m.name.startswith("tree_sitter_"))


def load_language(name: str) -> tree_sitter.Language:
    """The tree-sitter ``Language`` of the installed ``tree_sitter_<name>`` package."""
    key = name.strip().lower().replace("-", "_")
    try:
        module = importlib.import_module(f"tree_sitter_{key}")
    except ImportError:
        have = ", ".join(installed_languages()) or "none"
        raise ValueError(f"unknown tree-sitter language {name!r}: no module tree_sitter_{key} "
                         f"(pip install tree-sitter-{key.replace('_', '-')}); installed: "
                         f"{have}") from None
    fn = getattr(module, "language", None) or getattr(module, f"language_{key}", None)
    if fn is None:
        raise ValueError(f"tree_sitter_{key} has no language() function")
    try:
        return tree_sitter.Language(fn())
    except ValueError as e:
        raise ValueError(f"tree_sitter_{key} does not work with this tree-sitter: {e}") from e


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """(row, byte column) of ``offset`` in ``data``, as tree-sitter counts them."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def _common(a: bytes, b: bytes, limit: int, suffix: bool = False) -> int:
    """Length of the longest common prefix (or suffix) of ``a`` and ``b``, at most ``limit``."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        same = a[len(a) - mid:] == b[len(b) - mid:] if suffix else a[:mid] == b[:mid]
        lo, hi = (mid, hi) if same else (lo, mid - 1)
    return lo


_LINE_COMMENT = {"python": "#", "sql": "--", "bash": "#", "ruby": "#", "yaml": "#", "toml": "#"}
_SIGNIFICANT = re.compile(r"\"\"\"|'''|[\"'()\[\]{}\\\n]|#|--")


def _witnesses(text: str, comment: str | None) -> tuple[str, str]:
    """Guessed completions of ``text``: close its open string and brackets (naive scan)."""
    stack: list[str] = []
    quote, skip_to = "", -1
    for m in _SIGNIFICANT.finditer(text):
        tok, at = m.group(), m.start()
        if at < skip_to:
            continue
        if quote:
            if tok == "\\":
                skip_to = at + 2
            elif tok == quote or (tok == "\n" and len(quote) == 1):
                quote = ""
        elif tok == comment:
            end = text.find("\n", at)
            skip_to = len(text) if end < 0 else end
        elif tok in ("(", "[", "{"):
            stack.append(")]}"["([{".index(tok)])
        elif tok in (")", "]", "}") and stack and stack[-1] == tok:
            stack.pop()
        elif tok[0] in "'\"":
            quote = tok
    closing = quote + "".join(reversed(stack))
    return closing + "\n", " 0" + closing + "\n"


class _Trace:
    """Parser logger: did every parse version fail on input lexed strictly inside ``data``?

    Follows the lexer through the debug log (each lexing run logs its start row/column, then
    every character it advances over), checks each logged character against ``data``, and
    stops at the first verdict: ``failed`` (the parser's first "resume version" — every GLR
    version paused on an invalid lookahead — while no lexing run has looked at the end of the
    input), or not (the lexer reached the end of ``data`` first, or the log was not understood).
    """

    __slots__ = ("data", "rows", "pos", "token", "failed", "done")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.rows = [0] + [m.end() for m in re.finditer(b"\n", data)]
        self.pos = -1          # lexer position (bytes); -1 until a lexing run starts
        self.token = -1        # where the current run consumed its first character
        self.failed = False
        self.done = False

    def _stop(self, failed: bool = False) -> None:
        self.failed, self.done = failed, True

    def __call__(self, kind: tree_sitter.LogType, msg: str) -> None:
        if self.done:
            return
        if kind == tree_sitter.LogType.LEX:
            m = _ADVANCE.match(msg)
            if m is None or self.pos < 0:
                return self._stop()                 # unknown lexer message: fail safe
            ch = (m.group(2) if m.group(2) is not None else chr(int(m.group(3)))).encode(
                "utf-8", "surrogatepass")
            if not self.data.startswith(ch, self.pos):
                # the keyword lexer re-reads the word token from its start, unlogged
                if self.token < 0 or not self.data.startswith(ch, self.token):
                    return self._stop()
                self.pos = self.token
            if m.group(1) == "consume" and self.token < 0:
                self.token = self.pos
            self.pos += len(ch)
            if self.pos >= len(self.data):          # the lexer now looks at end of input
                self._stop()
        elif msg.startswith("lex_"):
            m = _LEX_START.match(msg)
            if m is None or int(m.group(1)) >= len(self.rows):
                return self._stop()
            self.pos, self.token = self.rows[int(m.group(1))] + int(m.group(2)), -1
            if self.pos >= len(self.data):
                self._stop()
        elif msg.startswith("resume version"):
            self._stop(failed=self.pos >= 0)


class TreeSitter(Potential):
    """Boolean potential of a tree-sitter grammar: ``complete(x) = 0`` iff x parses cleanly.

    ``complete(x)`` is 0.0 when tree-sitter's parse of ``x`` has no ERROR and no MISSING
    node, else -inf.  The language is *tree-sitter's* grammar, which is more lenient than
    the real one: tree-sitter-python accepts an empty block (``"def f():\\n"``), treats a
    newline as whitespace wherever a statement cannot end (``"x = \\n1\\n"`` is accepted), and
    knows Python 2 ``print``; tree-sitter-sql reads a misplaced keyword as an identifier.

    ``language``: a name (``"python"``, ``"sql"``, or any ``n`` with an importable
    ``tree_sitter_<n>`` package) or a ``tree_sitter.Language``.
    ``schedule``: when the engine evaluates this potential as a critic — ``"line"`` (text
    ends with a newline, the default), ``"always"``, or a callable ``text -> bool``.
    ``prefix_check``: ``"viable"`` (default, the sound rule below) or ``"none"`` (``prefix``
    is always 0.0).  ``cache_size``: parse trees kept for incremental reparsing.

    **What tree-sitter can and cannot say about an unfinished prefix.**  Tree-sitter has no
    "viable prefix" query.  Its tree for a prefix usually holds ERROR/MISSING nodes (an open
    bracket, string or block) and error recovery places them heuristically, often away from
    where the input went wrong; so neither "the tree has errors" nor "an error lies in a
    finished line" means that no continuation parses.  Rules from the real language do not
    transfer: "an error in lines followed by a new statement at column 0, with no bracket or
    string open, is final" is false for tree-sitter-python, where ``"x = \\n"`` has an
    error, ``"1"`` then starts at column 0, and ``"x = \\n1\\n"`` is accepted.

    ``prefix`` uses only two sound facts:

    1. (alive) if ``x``, or ``x + w`` for a guessed ``w`` (close the open string and
       brackets, optionally after ``" 0"``), parses cleanly, a completion exists: 0.0;
    2. (dead) the parser is deterministic and reads left to right.  If, in a fresh parse of
       ``x``, every GLR stack version rejects its lookahead token (tree-sitter's first
       "resume version") before any lexing run has looked at the end of ``x`` (the lexer
       reads past a token's end to delimit it, so "lexed from bytes of x" is the condition),
       then the parse of any ``y = x + s`` takes the same steps to the same rejection; every
       later stack version descends from that error, so ``y``'s tree holds an ERROR or
       MISSING node and ``complete(y) = -inf`` for every ``s``: ``prefix(x) = -inf``.

    Fact 2 is read from the parser's debug log (lexing start positions, each character the
    lexer advances over, checked against ``x``); a log line it does not understand makes it
    answer 0.0.  Otherwise ``prefix`` is 0.0, so whatever needs more input to be certain is
    never dead: ``"x = (1,\\n"``, ``'x = "ab'``, and ``"def f(:"`` (``:`` may become ``:=``);
    a bad token is caught once one more character follows it.  Also relied on: tree-sitter's
    contract that an incremental reparse yields the tree of a fresh parse (``complete``
    reuses cached trees; the tests check the verdicts agree).  Cost: a clean prefix is one
    incremental parse; a prefix with errors adds up to two incremental parses (the guesses)
    and maybe a fresh parse with logging, ~30x a plain parse (``stats`` counts them).
    """

    def __init__(
        self,
        language: str | tree_sitter.Language,
        *,
        schedule: str | Callable[[str], bool] = "line",
        prefix_check: str = "viable",
        cache_size: int = 64,
    ) -> None:
        if isinstance(language, str):
            self.language = load_language(language)
        elif isinstance(language, tree_sitter.Language):
            self.language = language
        else:
            raise TypeError(f"language must be a name (str) or a tree_sitter.Language, "
                            f"got {type(language).__name__}")
        if not (callable(schedule) or schedule in SCHEDULES):
            raise ValueError(f"schedule must be one of {SCHEDULES} or a callable, "
                             f"got {schedule!r}")
        if prefix_check not in PREFIX_CHECKS:
            raise ValueError(f"prefix_check must be one of {PREFIX_CHECKS}, got {prefix_check!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be an integer >= 1, got {cache_size!r}")
        self.name = self.language.name or "?"
        self._comment = _LINE_COMMENT.get(self.name)
        self.schedule = schedule
        self.prefix_check = prefix_check
        self.cache_size = cache_size
        self._parser = tree_sitter.Parser(self.language)
        self._tracer = tree_sitter.Parser(self.language)
        self._trees: OrderedDict[bytes, tree_sitter.Tree] = OrderedDict()
        self._dead: OrderedDict[bytes, bool] = OrderedDict()
        self.stats = {"parses": 0, "incremental": 0, "cache_hits": 0, "parse_seconds": 0.0,
                      "witnessed": 0, "traces": 0, "trace_seconds": 0.0}

    # -- parsing --------------------------------------------------------------------------
    def parse(self, text: str) -> tree_sitter.Tree:
        """The tree of ``text``, reparsed incrementally from the cached tree sharing most."""
        data = text.encode("utf-8", "surrogatepass")
        tree = self._trees.get(data)
        if tree is not None:
            self._trees.move_to_end(data)
            self.stats["cache_hits"] += 1
            return tree
        base, lcp = None, 0
        for key in reversed(self._trees):           # most recent first
            if len(key) > lcp and data.startswith(key):
                base, lcp = key, len(key)
        if base is None and self._trees:            # an edit of the latest text
            key = next(reversed(self._trees))
            base = key if _common(key, data, min(len(key), len(data))) else None
        tree = self._reparse(base, data)
        self._trees[data] = tree
        if len(self._trees) > self.cache_size:
            self._trees.popitem(last=False)
        return tree

    def _reparse(self, base: bytes | None, data: bytes,
                 base_tree: tree_sitter.Tree | None = None) -> tree_sitter.Tree:
        """Parse ``data``, fresh or by editing the tree of ``base`` (cached, or given)."""
        t0 = time.perf_counter()
        if base is None:
            tree = self._parser.parse(data)
        else:
            n = min(len(base), len(data))
            lcp = len(base) if data.startswith(base) else _common(base, data, n)
            lcs = _common(base, data, n - lcp, suffix=True)
            old = (self._trees[base] if base_tree is None else base_tree).copy()
            old.edit(start_byte=lcp, old_end_byte=len(base) - lcs,
                     new_end_byte=len(data) - lcs, start_point=_point(base, lcp),
                     old_end_point=_point(base, len(base) - lcs),
                     new_end_point=_point(data, len(data) - lcs))
            tree = self._parser.parse(data, old)
            self.stats["incremental"] += 1
        self.stats["parse_seconds"] += time.perf_counter() - t0
        self.stats["parses"] += 1
        return tree

    def _fails_inside(self, data: bytes) -> bool:
        """Fact 2 of the class docstring, from a fresh parse of ``data`` with logging."""
        if b"\0" in data:
            return False
        trace = _Trace(data)
        t0 = time.perf_counter()
        self._tracer.reset()
        self._tracer.logger = trace
        try:
            self._tracer.parse(lambda off, _pt: data[off:],
                               progress_callback=lambda _off, _err: trace.done)
        except ValueError:
            pass                                    # cancelled once the verdict was known
        finally:
            self._tracer.logger = None
            self._tracer.reset()
        self.stats["traces"] += 1
        self.stats["trace_seconds"] += time.perf_counter() - t0
        return trace.failed

    # -- the potential --------------------------------------------------------------------
    def complete(self, text: str) -> float:
        """0.0 when the tree of ``text`` has no ERROR/MISSING node, else -inf."""
        return NEG_INF if self.parse(text).root_node.has_error else 0.0

    def prefix(self, text: str) -> float:
        """0.0 unless no extension of ``text`` can parse cleanly (see the class docstring)."""
        if self.prefix_check == "none":
            return 0.0
        tree = self.parse(text)
        if not tree.root_node.has_error:
            return 0.0
        data = text.encode("utf-8", "surrogatepass")
        dead = self._dead.get(data)
        if dead is None:
            # a guessed completion that parses cleanly proves text alive, cheaper than a trace
            alive = any(not self._reparse(data, (text + w).encode("utf-8", "surrogatepass"),
                                          tree).root_node.has_error
                        for w in _witnesses(text, self._comment))
            self.stats["witnessed"] += alive
            dead = not alive and self._fails_inside(data)
            self._dead[data] = dead
            if len(self._dead) > self.cache_size:
                self._dead.popitem(last=False)
        return NEG_INF if dead else 0.0

    def evaluate_at(self, text: str) -> bool:
        """The critic's schedule: at line ends (default), at every step, or a callable's."""
        if callable(self.schedule):
            return bool(self.schedule(text))
        return self.schedule == "always" or text.endswith("\n")

    def __repr__(self) -> str:
        return f"TreeSitter({self.name!r})"
