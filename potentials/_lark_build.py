"""Lark's LALR(1) parser of a grammar text, built (or loaded from the disk cache) with
every failure reported as a ``GrammarError`` that names the line and column.

* Lark's own errors (unexpected characters or tokens in the grammar, undefined rules and
  terminals, reduce/reduce collisions, regexes Python cannot compile, also inside
  Lark's combined lexer regex) are located in the grammar text.
* ``strict=True`` also rejects the shift/reduce conflicts Lark resolves as shift (read
  from Lark's debug log, kept beside its disk cache: ``_lark_cache``).
* A start rule whose language is empty is an error before any generation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from lark import Lark, logger
from lark.exceptions import LexError

from potentials import _lark_cache
from potentials._lalr_tables import LalrParser
from potentials._lark_indent import GrammarIndenter, wants_indenter
from potentials._lark_parser import ParserEngine, compile_flags
from potentials._lark_regex import DEAD

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


def check_language_not_empty(lark: Lark, engine: ParserEngine, start: str,
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
                        g_regex_flags=compile_flags(ignore_case), cache=cache, postlex=postlex,
                        _plugins={"LALR_Parser": LalrParser})
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
