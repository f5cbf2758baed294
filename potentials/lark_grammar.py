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

from collections import OrderedDict

from lark.exceptions import LarkError

from potentials._heap import collector_paused
from potentials._lark_build import GrammarError, build_lark, check_language_not_empty
from potentials._lark_parser import Config, ParserEngine, compile_flags
from potentials.base import NEG_INF, Potential

__all__ = ["GrammarError", "LarkGrammar"]

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
        with collector_paused():  # see _heap: no full collection mid-compile
            self._lark = build_lark(grammar_text, start, ignore_case, strict)
            self._engine = ParserEngine(self._lark, compile_flags(ignore_case),
                                        indenter=self._lark.options.postlex)
            check_language_not_empty(self._lark, self._engine, start, grammar_text)
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
        with collector_paused():  # importing it imports Numba: many new containers
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
