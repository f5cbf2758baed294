"""A boolean grammar potential from a Lark LALR(1) grammar, over characters.

* ``complete(x) = 0`` iff Lark's LALR parser (contextual lexer) parses ``x``, else −inf.
* ``prefix(x) = 0`` iff some ``y ⊒ x`` could be in that language, else −inf.  It is never
  −inf for a prefix of an accepted text: it tracks the set of (parser stack, partial
  lexeme, lexer constraints) configurations that a character-level reading of Lark's
  lexer + parser can be in after ``x``, a superset of the one Lark itself reaches.

Over-approximations (``prefix`` may say 0 with no accepted completion), all rare:
  1. the length of a lexeme, for a terminal whose ``re.match`` is not provably its longest
     match (``_lark_munch``): every end point where its regex matches is kept.  For the
     others (every terminal of the shipped grammars but a few string/number regexes) a
     lexeme ends only where no longer match exists, exactly as Lark lexes;
  2. regex constructs that are not regular or look outside the lexeme (lookaround,
     anchors, ``\\b``, back-references, possessive/atomic, repeats > 200) are widened;
     such a terminal also stops pre-empting later terminals (see ``_lark_lexer``);
  3. grammars with unproductive rules (a rule that can never finish).
A grammar that ``%declare``s ``_INDENT`` and ``_DEDENT`` gets Lark's Python-style
indentation post-lexer (``_lark_indent``), tracked exactly in the configurations.
``prefix`` is incremental: configuration sets are cached per text
and a text is computed from its longest cached prefix.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from lark import Lark, logger
from lark.exceptions import LarkError, LexError

from potentials import _lark_cache
from potentials._lark_indent import GrammarIndenter, wants_indenter
from potentials._lark_parser import Config, ParserEngine, compile_flags
from potentials._lark_regex import DEAD
from potentials.base import NEG_INF, Potential

_LOC = re.compile(r"line (\d+),? col(?:umn)? (\d+)")
_QUOTED = re.compile(r"'([^'\s]+)'")
_RULE_DEF = re.compile(r"^[ \t]*[?!]?([A-Za-z_][A-Za-z_0-9]*)(?:\.-?\d+)?[ \t]*:", re.M)
# names whose *definition* is where the error is: a rule in an LALR conflict ("<x : A B>"),
# a terminal Lark cannot compile ("token A:", "(A: 'a*')")
_DEFINED = re.compile(r"<([A-Za-z_]\w*) :|\btoken ([A-Za-z_]\w*)|\(([A-Za-z_]\w*): ")
# string and regex literals and comments of Lark's grammar syntax (blanked before a search)
_LITERAL = re.compile(r'"(?:\\"|\\\\|[^"\n])*?"i?|/(?!/)(?:\\/|\\\\|[^/\n])*?/[imslux]*'
                      r"|//[^\n]*|#[^\n]*")


class GrammarError(ValueError):
    """A grammar text that Lark cannot turn into an LALR(1) parser."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.line, self.column = line, column
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"invalid grammar{where}: {message}")


def _find_name(name: str, text: str, nth: int = 0,
               uses: bool = True) -> tuple[int | None, int | None]:
    """(line, column) of the ``nth`` definition of ``name`` (else, if ``uses``, its first use),
    outside comments and string/regex literals."""
    masked = _LITERAL.sub(lambda m: " " * len(m.group()), text)
    patterns = [rf"^[ \t]*[?!]?{re.escape(name)}\b"] + [rf"(?<![\w\"']){re.escape(name)}\b"] * uses
    for i, pattern in enumerate(patterns):
        hits = list(re.finditer(pattern, masked, re.M))
        if hits:
            hit = hits[min(nth, len(hits) - 1)] if i == 0 else hits[0]
            start = hit.start() + len(hit.group()) - len(hit.group().lstrip(" \t?!"))
            line = text.count("\n", 0, start) + 1
            return line, start - (text.rfind("\n", 0, start) + 1) + 1
    return None, None


def _locate(exc: Exception, text: str) -> tuple[int | None, int | None]:
    """(line, column) of a Lark grammar error: from the exception, its message, or a name."""
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(line, int) and isinstance(column, int) and line > 0 and column > 0:
        return line, column
    msg = str(exc)
    found = _LOC.search(msg)
    if found:
        return int(found.group(1)), int(found.group(2))
    # the first definition in the text: Lark lists a collision's rules in set order
    defined = [_find_name(next(g for g in groups if g), text, uses=False)
               for groups in _DEFINED.findall(msg)]
    defined = [hit for hit in defined if hit[0] is not None]
    if defined:
        return min(defined)
    nth = 1 if "defined more than once" in msg else 0  # the second definition is the error
    for name in _QUOTED.findall(msg):
        line, column = _find_name(name, text, nth)
        if line is not None:
            return line, column
    return None, None


def _first_line(msg: str) -> str:
    return " ".join(part.strip() for part in msg.strip().splitlines() if part.strip())


@contextmanager
def _shift_reduce_log() -> Iterator[list[str]]:
    """Collect Lark's (debug-level) reports of shift/reduce conflicts it resolved as shift."""
    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                records.append(record.getMessage())
            except (TypeError, ValueError):  # e.g. Lark 1.3's cache-save failure message
                records.append(str(record.msg))  # has more arguments than placeholders

    saved = logger.level, logger.handlers[:], logger.propagate
    logger.handlers[:] = [_Keep(logging.DEBUG)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]


@contextmanager
def _without_overlap_scan() -> Iterator[None]:
    """Build without Lark's scan of every pair of terminal regexes for overlaps.

    Lark runs it when ``interegular`` is installed (0.4 s of a 2 s SQL compile on a 2-core
    CPU, its own grammar's parser included) only to log warnings unless ``strict=True``,
    which is never passed to Lark here; nothing here reads those warnings.
    """
    import lark.lexer as lark_lexer

    saved = getattr(lark_lexer, "has_interegular", False)
    lark_lexer.has_interegular = False
    try:
        yield
    finally:
        lark_lexer.has_interegular = saved


def _compile_lexers(lark: Lark, flags: int) -> None:
    """Compile now the lexers Lark compiles lazily (on first use, in ``parse``).

    A terminal whose regex is valid alone can fail inside Lark's combined lexer regex
    (``(?P<NAME>...)|...``), e.g. a numbered back-reference ``/(a)b\\1/`` that then
    refers to the open named group: the error is a LexError naming that terminal.
    """
    lexer = lark.parser.lexer
    lexer = lexer if hasattr(lexer, "lexers") else lexer.lexer  # behind a post-lexer
    try:
        for basic in {id(b): b for b in [*lexer.lexers.values(), lexer.root_lexer]}.values():
            basic.scanner  # noqa: B018 - a lazy property that compiles the lexer
    except re.error as exc:
        for t in lark.terminals:
            try:
                re.compile(f"(?P<{t.name}>{t.pattern.to_regexp()})", flags)
            except re.error as inner:
                raise LexError(f"Cannot compile token {t.name} in Lark's lexer: {inner}") from exc
        raise LexError(f"Cannot compile Lark's lexer: {exc}") from exc


def _check_language_not_empty(lark: Lark, engine: ParserEngine, start: str,
                              grammar_text: str) -> None:
    """GrammarError when no finite text derives from ``start`` (an unproductive start rule).

    Productive symbols, to a fixpoint: a terminal whose regex matches some string (or one
    a post-lexer emits), a rule whose expansion is all productive symbols.
    """
    productive = {name for name, auto in zip(engine.names, engine.autos, strict=False)
                  if auto.start != DEAD}
    productive |= set(engine.names[len(engine.autos):])  # emitted by the post-lexer
    rules = [(r.origin.name, [sym.name for sym in r.expansion]) for r in lark.rules]
    changed = True
    while changed:
        changed = False
        for origin, expansion in rules:
            if origin not in productive and all(sym in productive for sym in expansion):
                productive.add(origin)
                changed = True
    if start not in productive:
        stuck = sorted({o for o, _e in rules if o not in productive and not o.startswith("_")
                        and not o.startswith("__")})
        line, column = _find_name(start, grammar_text, uses=False)
        raise GrammarError(f"the language of start rule '{start}' is empty: no finite text "
                           f"derives from it (rules that never finish: {', '.join(stuck)})",
                           line, column)


def build_lark(grammar_text: str, start: str, ignore_case: bool, strict: bool) -> Lark:
    """Lark's LALR(1) parser of ``grammar_text``, from the disk cache after the first build
    (``_lark_cache``); GrammarError with a location if it fails."""
    cache = _lark_cache.cache_file(grammar_text, start, ignore_case)
    known = None if cache is None else _lark_cache.known_conflicts(cache)
    use = cache is not None and _lark_cache.writable(cache)
    lark, log = _lark(grammar_text, start, ignore_case, str(cache) if use else False)
    if _lark_cache.was_loaded(log):
        if known is None:  # another process wrote the cache since: its conflicts unknown
            lark, log = _lark(grammar_text, start, ignore_case, False)
        else:
            log = known  # Lark's cache holds the parser, not what its analysis logged
    if log is not known:
        log = [m for m in log if m.startswith(("Shift/Reduce", " * "))]
        if use and cache is not None:
            _lark_cache.remember_conflicts(cache, log)
    conflicts = [m for m in log if m.startswith("Shift/Reduce")]
    if strict and conflicts:
        rules = [m.strip(" *") for m in log if m.startswith(" * ")]
        msg = "LALR(1) conflict: " + "; ".join(
            f"{c} in rule <{r}>"
            for c, r in zip(conflicts, rules + [""] * len(conflicts), strict=False))
        found = _DEFINED.search(msg)
        line, column = (None, None) if found is None else _find_name(found.group(1), grammar_text,
                                                                     uses=False)
        raise GrammarError(msg, line, column)
    return lark


def _lark(grammar_text: str, start: str, ignore_case: bool,
          cache: str | bool) -> tuple[Lark, list[str]]:
    """Lark's parser and the messages Lark logged building (or loading) it."""
    try:
        with _shift_reduce_log() as log, _without_overlap_scan():
            postlex = GrammarIndenter() if wants_indenter(grammar_text) else None
            lark = Lark(grammar_text, parser="lalr", lexer="contextual", start=start,
                        g_regex_flags=compile_flags(ignore_case), cache=cache, postlex=postlex)
            _compile_lexers(lark, compile_flags(ignore_case))
    except Exception as exc:  # Lark raises GrammarError, UnexpectedInput, LexError, ...
        msg = str(exc)
        if f"undefined rule: NonTerminal('{start}')" in msg:
            rules = sorted({m for m in _RULE_DEF.findall(grammar_text) if not m.isupper()})
            raise GrammarError(f"start rule '{start}' is not defined "
                               f"(rules defined: {', '.join(rules) or 'none'})") from exc
        line, column = _locate(exc, grammar_text)
        kind = "LALR(1) conflict" if "collision" in msg else type(exc).__name__
        raise GrammarError(f"{kind}: {_first_line(msg)}", line, column) from exc
    return lark, log


class LarkGrammar(Potential):
    """Φ(x) = 1[x ∈ L(G)] for a Lark LALR(1) grammar G; ``prefix`` bounds it over y ⊒ x.

    ``ignore_case`` makes every terminal case-insensitive (Lark's ``g_regex_flags``);
    ``strict`` rejects shift/reduce conflicts, which Lark otherwise resolves as shift
    (reduce/reduce conflicts are always a GrammarError).  ``cache_size`` bounds the
    number of texts whose configuration sets are kept for incremental ``prefix``.
    """

    _MAX_STACK_NODES = 200_000
    _TAIL = 16  # when advancing, the last _TAIL intermediate texts are cached ...
    _STRIDE = 64  # ... and every _STRIDE-th one before them

    def __init__(self, grammar_text: str, start: str = "start", ignore_case: bool = False,
                 *, strict: bool = False, cache_size: int = 50_000) -> None:
        if not isinstance(grammar_text, str):
            raise TypeError(f"grammar_text must be str, got {type(grammar_text).__name__}")
        self.start = start
        self.ignore_case = ignore_case
        self.cache_size = max(1, int(cache_size))
        self._lark = build_lark(grammar_text, start, ignore_case, strict)
        self._engine = ParserEngine(self._lark, compile_flags(ignore_case),
                                    indenter=self._lark.options.postlex)
        _check_language_not_empty(self._lark, self._engine, start, grammar_text)
        self._initial = self._engine.initial()
        self._ends_exactly = self._engine.ends_exactly
        # LRU caches: OrderedDict evicts its oldest entry in O(1); a dict's
        # del d[next(iter(d))] rescans the deleted slots at its front (~8 µs at 100k)
        self._cache: OrderedDict[str, frozenset[Config]] = OrderedDict()
        self._complete_cache: OrderedDict[str, float] = OrderedDict()

    @property
    def exact_lexing(self) -> bool:
        """False when some terminal's regex had to be widened (over-approximation 2)."""
        return self._engine.exact_terminals

    @property
    def terminals(self) -> list[str]:
        """Names of the grammar's terminals."""
        return list(self._engine.names)

    # ---- prefix ----------------------------------------------------------------------
    def _store(self, key: str, value: frozenset[Config]) -> None:
        cache = self._cache
        cache[key] = value
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _lookup_base(self, text: str) -> tuple[int, frozenset[Config]]:
        """The longest cached proper prefix of ``text`` (its length and configurations)."""
        cache, n = self._cache, len(text)
        for cut in range(n - 1, max(n - 33, 0), -1):
            key = text[:cut]
            got = cache.get(key)
            if got is not None:
                cache.move_to_end(key)  # keep hot bases from eviction
                return cut, got
        for cut in range((min(n - 33, n - 1)) // self._STRIDE * self._STRIDE, 0, -self._STRIDE):
            got = cache.get(text[:cut])
            if got is not None:
                return cut, got
        return 0, self._initial

    def _configs(self, text: str) -> frozenset[Config]:
        got = self._cache.get(text)
        if got is not None:
            return got
        if not text:
            return self._initial
        n = len(text)
        pos, configs = self._lookup_base(text)
        advance = self._engine.advance
        while pos < n and configs:
            configs = advance(configs, text[pos])
            pos += 1
            if pos < n and (n - pos <= self._TAIL or pos % self._STRIDE == 0 or not configs):
                self._store(text[:pos], configs)
        self._store(text, configs)
        if self._engine.node_count > self._MAX_STACK_NODES:
            self._reset()
        return configs

    def _reset(self) -> None:
        """Drop interned parser stacks and everything that refers to them."""
        self._engine.reset_stacks()
        self._cache.clear()
        self._initial = self._engine.initial()

    def prefix(self, text: str) -> float:
        """0 if some completion of ``text`` may be in the language, else −inf."""
        if self._configs(text):
            return 0.0
        return self.complete(text) if not text else NEG_INF

    def prefix_held(self, text: str, held: bytes) -> float:
        """0 if a character starting with the bytes ``held`` can follow ``text`` in some
        string of the language (one representative per class of characters the lexer
        tells apart; ``potentials.held_chars``), else −inf."""
        reps = self.held_chars.reps(held)
        if reps is None:                  # a lone 4-byte lead byte: not narrowed
            return self.prefix(text)
        return 0.0 if any(self.prefix(text + ch) == 0.0 for ch in reps) else NEG_INF

    @property
    def held_chars(self):
        """``HeldChars`` over this grammar's regex atoms (built on first use)."""
        got = getattr(self, "_held_chars", None)
        if got is None:
            from potentials.held_chars import HeldChars

            got = self._held_chars = HeldChars(self.atoms())
        return got

    def atoms(self) -> list:
        """The distinct one-character regex atoms of every terminal (compiled patterns)."""
        return list({(a.pattern, a.flags): a for auto in self._engine.autos
                     for a in auto._atoms}.values())

    def is_viable_prefix(self, text: str) -> bool:
        """``prefix(text) == 0`` as a bool."""
        return self.prefix(text) == 0.0

    # ---- complete --------------------------------------------------------------------
    def complete(self, text: str) -> float:
        """0 if Lark's LALR parser accepts ``text``, else −inf.

        Read off the text's configurations when they decide it exactly
        (``ParserEngine.ends_exactly``: every terminal exact and longest-match), else
        Lark parses the text (after the configurations rule out what they can)."""
        got = self._complete_cache.get(text)
        if got is None:
            configs = self._configs(text)
            if text and not configs:
                got = NEG_INF  # sound: every prefix of an accepted text is viable
            elif configs and self._ends_exactly:
                got = 0.0 if self._engine.can_end(configs) else NEG_INF
            elif configs and not self._engine.can_end(configs):
                got = NEG_INF  # sound: can_end is necessary
            else:
                try:
                    self._lark.parse(text)
                    got = 0.0
                except (LarkError, AssertionError, IndexError):
                    # UnexpectedInput, the indenter's DedentError / bracket assertion, and
                    # its IndexError on a newline token with no newline (a final comment)
                    got = NEG_INF
            cache = self._complete_cache
            cache[text] = got
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        return got

    def token_masker(self, vocab_bytes, eos_ids):
        """The compiled ``GrammarMask`` of this grammar for a vocabulary (built once)."""
        from potentials.grammar_mask import GrammarMask

        key = (id(vocab_bytes), tuple(sorted(eos_ids)))
        maskers = self.__dict__.setdefault("_maskers", {})
        got = maskers.get(key)
        if got is None or got[0] is not vocab_bytes:
            got = maskers[key] = (vocab_bytes, GrammarMask(self, vocab_bytes, eos_ids))
        return got[1]

    def accepts(self, text: str) -> bool:
        """``complete(text) == 0`` as a bool."""
        return self.complete(text) == 0.0

    def parse(self, text: str):
        """Lark's parse tree of ``text`` (raises Lark's UnexpectedInput if rejected)."""
        return self._lark.parse(text)

    def __repr__(self) -> str:
        return f"LarkGrammar(start={self.start!r}, terminals={len(self._engine.names)})"
