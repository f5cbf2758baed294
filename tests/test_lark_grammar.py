"""Tests of ``potentials.LarkGrammar``, the boolean Lark grammar potential over characters.

What is checked, and against what:

* soundness: every prefix of a text Lark accepts has ``prefix == 0``, and ``complete``
  agrees with ``lark.Lark(..., parser="lalr").parse`` (the oracle is Lark itself);
* exactness: for grammars with no lexing ambiguity, ``prefix(x) == 0`` iff some
  extension of ``x`` is accepted by Lark, found by brute-force enumeration of every
  string over a small alphabet (and, for one-terminal grammars, by the independent
  partial matcher of the ``regex`` package);
* monotonicity: once ``prefix(x) == -inf`` every extension is −inf (the engine prunes
  on it), and the answer does not depend on what was computed (and cached) before;
* bad grammars raise ``GrammarError`` naming the right line and column;
* the cache bound and ``exact_lexing``.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re

import lark
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import grammars
from potentials import NEG_INF, GrammarError, LarkGrammar

# ---------------------------------------------------------------------------------------
# grammars under test
# ---------------------------------------------------------------------------------------

# the contextual lexer: HEX and NAME overlap ("abc" matches both) and are each valid only
# in some parser states, so a plain (non-contextual) lexer would get "nabc" or "kff" wrong
CONTEXTUAL = r"""
start: "k" HEX | "n" NAME | "x" NAME "=" HEX
HEX: /[0-9a-f]+/
NAME: /[a-z]+/
"""

# keywords vs identifiers: where a keyword and NAME are both expected, Lark lexes "if" /
# "print" as NAME and re-types the token to the keyword (an ``unless`` callback); where
# only NAME is expected (contextual lexer), "if" stays a NAME
KEYWORDS = r"""
start: stmt+
stmt: "if" NAME ":" NAME ";" | NAME "=" NAME ";" | "print" NAME ";"
NAME: /[a-z_]+/
%ignore " "
"""

# a case-insensitive keyword next to a case-sensitive NAME: the keyword is *not* folded
# into NAME's lexer pattern (its flags differ), it stays a terminal of its own placed
# after NAME in Lark's order, and "select" is still lexed as NAME then re-typed to SELECT
# (Lark decides re-typing on the literal's spelling: with "SELECT"i, NAME does not match
# "SELECT", so there is no re-typing and "select" stays a NAME - see CI_UPPER)
CI_KEYWORD = r"""
start: stmt (";" stmt)*
stmt: "select"i NAME | NAME "=" NAME
NAME: /[a-z_]+/
%ignore " "
"""
CI_UPPER = CI_KEYWORD.replace('"select"i', '"SELECT"i')

# terminals that are prefixes of each other: "<" "=" is grammatical, but Lark's lexer
# always takes "<=" when the two characters are adjacent (the longer literal comes first)
LESS_EQ = r"""
start: NAME "<" NAME | NAME "<=" NAME | NAME "<" "=" "!"
NAME: /[a-z]+/
%ignore " "
"""

# regex terminals with classes, counted repeats, alternatives and categories
REGEXES = r"""
start: ID ":" CODE ("," CODE)*
ID: /[A-Z][a-z0-9_]{0,3}/
CODE: /(?:0x[0-9a-f]{2,4}|[0-7]+o|\d{1,3}(?:\.\d+)?)/
%ignore /[ \t]+/
"""

# every terminal case-insensitive through ``ignore_case=True``
IGNORE_CASE = r"""
start: "select" NAME ("," NAME)* "from" NAME
NAME: /[a-z]+/
%ignore " "
"""

# unicode terminals and unicode \w
UNICODE = r"""
start: GREETING NAME "!"
GREETING: "héllo" | "こんにちは" | "привет"
NAME: /\w+/
%ignore " "
"""

# a terminal with lookahead: its automaton is widened (exact_lexing is False)
LOOKAHEAD = r"""
start: A "b"
A: /a+(?=b)/
"""

# name -> (grammar text, LarkGrammar keyword arguments, accepted texts, rejected texts)
CASES: dict[str, tuple[str, dict, list[str], list[str]]] = {
    "arith": (
        grammars.load("arith"), {},
        ["1+2", "(12 + 3) * 4", "-(7 / 2)", " 1 ", "--1", "123", "1*(2-3)/4", "1+-2",
         "((((0))))", "  7  *  8  "],
        ["1 2", "(", "1+", "()", "1++2", "(1", "1)", "", " ", "1+2)", "a", "1.5", "12 3"],
    ),
    "json": (
        grammars.load("json"), {},
        ['{"ab": [1, -2.5e3, true, null]}', '"caf\\u00e9 \\n \\"q\\""', '"naïve λ 日本 😀"',
         "[]", ' {\n"a"\t:\r{} } ', "0", "-0.0E+1", '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00E9"',
         '[[[]], {"k": {"k": []}}, "x", false]', '{"": ""}'],
        ['{"a" 1}', "01", "[1,]", '{"a":1,}', '"\\x"', '"tab\there"', "'a'", "True",
         '{"ab', "-", "1.", "1e", '"\\u12"', "[1 2]", '{"a"}', "", "nul"],
    ),
    "contextual": (
        CONTEXTUAL, {},
        ["kff", "nxyz", "k0a9", "nabc", "xab=12", "kabc", "xz=f0"],
        ["kxyz", "n12", "xab=zz", "nab=1", "k", "x=1", "kFF"],
    ),
    "keywords": (
        KEYWORDS, {},
        ["if x: y;", "iffy = x;", "printer = x;", "print x;", "if x:y;print z;",
         "x=y;if a:b;", " print  pr ; ", "ifif = printprint;", "x = if;", "if x: print;",
         "print print;", "if if: x;"],
        ["if = x;", "print = x;", "ifx:y;", "printx;", "x = y", "", "if x: y; print = z;"],
    ),
    "ci_keyword": (
        CI_KEYWORD, {},
        ["select x", "SELECT x", "Select x", "sel = x", "select x; a = b", "selects = x",
         "SeLeCt  abc ;SELECT d", "x = select", "SELECTx", "select select"],
        # "sElEcT": NAME comes first in Lark's order and matches "s", so it wins
        ["select = x", "Sel = x", "select", "x = SELECT", "selectx", "SELECT = x",
         "sElEcT x"],
    ),
    "ci_upper": (
        CI_UPPER, {},
        ["select = x", "SELECT x", "Select x", "selects = x", "SELECTx"],
        ["select x", "SELECT = x", "select"],
    ),
    "less_eq": (
        LESS_EQ, {},
        ["a<b", "a<=b", "a < = !", "a< =!", "ab <= cd", "x <=y", "a<= b"],
        ["a<=!", "a<=", "a<", "a < =b", "a<==", "a = !", "<=", "a <=!"],
    ),
    "regexes": (
        REGEXES, {},
        ["A:0x1f", "Ab_1: 07o, 12, 3.25", "Z:0xabcd,0", "Q9:777", "B: 1234o", "C:0x12ab"],
        ["A:0x", "a:1", "Abcde:1", "A:0x1", "A:1234", "A:0xabcde", "A:1.", "A:8o"],
    ),
    "ignore_case": (
        IGNORE_CASE, {"ignore_case": True},
        ["SELECT a, B FROM t", "select x from y", "SeLeCt abc,DEF fRoM g",
         "Select FROM from t", "selectx from y", "select from from from",
         "select x fromy"],
        ["select x", "select x, from y", "select x from", "select x y", "sel x from y"],
    ),
    "unicode": (
        UNICODE, {},
        ["héllo Zoë!", "こんにちは 世界!", "привет λ!", "héllo  naïve_2 !", "héllo ß9!"],
        ["hello Zoë!", "héllo !", "héllo Zoë", "привет мир", "héllo😀!"],
    ),
    "lookahead": (
        LOOKAHEAD, {},
        ["ab", "aaab"],
        ["a", "b", "abb", ""],
    ),
}


@functools.cache
def potential(name: str) -> LarkGrammar:
    """One shared (warm-cache) LarkGrammar per case."""
    text, kwargs, _acc, _rej = CASES[name]
    return LarkGrammar(text, **kwargs)


@functools.cache
def lark_parser(text: str, ignore_case: bool = False) -> lark.Lark:
    """The oracle: Lark's own LALR parser with its contextual lexer."""
    return lark.Lark(text, parser="lalr", lexer="contextual",
                     g_regex_flags=re.IGNORECASE if ignore_case else 0)


def oracle(name: str) -> lark.Lark:
    text, kwargs, _acc, _rej = CASES[name]
    return lark_parser(text, kwargs.get("ignore_case", False))


def lark_accepts(parser: lark.Lark, text: str) -> bool:
    try:
        parser.parse(text)
    except lark.exceptions.UnexpectedInput:
        return False
    return True


# ---------------------------------------------------------------------------------------
# 1. soundness: accepted texts are viable at every prefix; complete() is Lark's verdict
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_examples_are_classified_as_lark_does(name):
    """The hand-written examples mean what the test says (guards the tests themselves)."""
    _text, _kw, accepted, rejected = CASES[name]
    parser = oracle(name)
    assert [t for t in accepted if not lark_accepts(parser, t)] == []
    assert [t for t in rejected if lark_accepts(parser, t)] == []


@pytest.mark.parametrize("name", list(CASES))
def test_every_prefix_of_an_accepted_text_is_viable(name):
    _text, _kw, accepted, _rej = CASES[name]
    g = potential(name)
    for text in accepted:
        assert g.complete(text) == 0.0, text
        assert g.accepts(text)
        for i in range(len(text) + 1):
            assert g.prefix(text[:i]) == 0.0, (text, text[:i])
            assert g.is_viable_prefix(text[:i])


@pytest.mark.parametrize("name", list(CASES))
def test_complete_agrees_with_lark(name):
    """On the examples, all their prefixes and random one-character edits of them."""
    _text, _kw, accepted, rejected = CASES[name]
    g, parser = potential(name), oracle(name)
    rng = random.Random(name)
    alphabet = sorted(set("".join(accepted + rejected)))
    texts = set(accepted + rejected)
    for t in accepted + rejected:
        texts.update(t[:i] for i in range(len(t)))
        for _ in range(8):
            i = rng.randrange(len(t) + 1)
            c = rng.choice(alphabet)
            texts.update({t[:i] + c + t[i:], t[:i] + c + t[i + 1:], t[:i] + t[i + 1:]})
    for t in sorted(texts):
        expected = 0.0 if lark_accepts(parser, t) else NEG_INF
        assert g.complete(t) == expected, t
        if expected == 0.0:
            assert g.prefix(t) == 0.0, t


def test_half_typed_last_lexeme():
    j, a = LarkGrammar(grammars.load("json")), LarkGrammar(grammars.load("arith"))
    # a string, a number, a keyword and an escape cut in the middle: viable, not complete
    for text in ['{"ab', '{"a": "x\\', '"\\u00', "[1, -", "[1.5e", "[tr", '{"a": nul', "-0."]:
        assert j.prefix(text) == 0.0 and j.complete(text) == NEG_INF, text
    # ... and finished
    for text in ['{"ab": 1}', '"\\u00e9"', "[1, -2]", "[1.5e3]", "[true]", "-0.5"]:
        assert j.prefix(text) == 0.0 and j.complete(text) == 0.0, text
    # an INT lexeme grows one digit at a time and is complete at every step
    assert [a.complete(t) for t in ["1", "12", "123"]] == [0.0, 0.0, 0.0]
    assert [a.prefix(t) for t in ["1", "12", "123", "123 ", "123 4"]] == [0.0] * 4 + [NEG_INF]
    # a bad escape, a leading zero, a second value: dead at once
    for text in ['"\\x', '"\\u0g', "01", "[1] [", '{"a" 1', "[,", "tx"]:
        assert j.prefix(text) == NEG_INF, text
        assert j.complete(text) == NEG_INF, text


def test_keywords_are_retyped_only_where_the_keyword_is_expected():
    g = potential("keywords")
    assert g.prefix("if") == 0.0  # a keyword, or the start of "iffy"
    assert g.prefix("if ") == 0.0  # the keyword IF
    assert g.prefix("if =") == NEG_INF  # IF cannot start an assignment
    assert g.prefix("iff =") == 0.0  # NAME "iff"
    assert g.prefix("print x") == 0.0 and g.prefix("print =") == NEG_INF
    # where only NAME is expected the contextual lexer has no IF terminal: "if" is a NAME
    assert g.complete("x = if;") == 0.0 and g.complete("if if: print;") == 0.0
    # ... but where both are expected, "if" is always IF (x = y; if = z; is rejected)
    assert g.prefix("x = y; if =") == NEG_INF and g.prefix("x = y; iff =") == 0.0


def test_case_insensitive_keyword_next_to_case_sensitive_name():
    """Regression: the keyword re-typing target must survive Lark's first-match rule.

    NAME comes first in Lark's order and matches "select", so the keyword terminal itself
    can never be chosen for it, but NAME's token is re-typed to SELECT.
    """
    g = potential("ci_keyword")
    for text in ["select", "select ", "select x", "SELECT x", "Select x; select y"]:
        assert g.prefix(text) == 0.0, text
    assert g.complete("select x") == 0.0
    assert g.complete("SeLeCt x") == 0.0
    assert g.prefix("select =") == NEG_INF
    assert g.prefix("selects =") == 0.0
    assert g.prefix("SELECT =") == NEG_INF
    assert g.prefix("Sel =") == NEG_INF  # not lowercase: no NAME, and not the keyword


def test_contextual_lexer_uses_the_terminals_of_the_parser_state():
    g = potential("contextual")
    assert g.prefix("kab") == 0.0 and g.complete("kab") == 0.0  # HEX here
    assert g.prefix("nab") == 0.0 and g.complete("nab") == 0.0  # NAME here
    assert g.prefix("kx") == NEG_INF  # 'x' is no HEX digit, and NAME is not expected
    assert g.prefix("n1") == NEG_INF
    assert g.prefix("xab=") == 0.0 and g.prefix("xab=g") == NEG_INF


def test_prefix_terminals_follow_lark_longest_literal_first():
    g = potential("less_eq")
    assert g.prefix("a<=") == 0.0  # "<=", to be followed by a NAME
    assert g.prefix("a<=!") == NEG_INF  # adjacent "<=" is always one token, never "<" "="
    assert g.prefix("a< =") == 0.0 and g.complete("a< =!") == 0.0
    assert g.prefix("a<=b") == 0.0 and g.complete("a<=b") == 0.0


def test_empty_text_edge_cases():
    only_empty = LarkGrammar("start:\n")
    assert only_empty.prefix("") == 0.0 and only_empty.complete("") == 0.0
    assert only_empty.prefix("a") == NEG_INF and only_empty.complete("a") == NEG_INF
    optional = LarkGrammar('start: "a"?\n%ignore " "\n')
    assert [optional.complete(t) for t in ["", " ", "a", " a ", "aa"]] == [0.0] * 4 + [NEG_INF]
    assert optional.prefix("aa") == NEG_INF
    arith = LarkGrammar(grammars.load("arith"))
    assert arith.prefix("") == 0.0 and arith.complete("") == NEG_INF


def _check_generated(g: LarkGrammar, parser: lark.Lark, text: str) -> None:
    ok = lark_accepts(parser, text)
    assert g.complete(text) == (0.0 if ok else NEG_INF), text
    if ok:
        for i in range(len(text) + 1):
            assert g.prefix(text[:i]) == 0.0, (text, i)


_FAST = settings(max_examples=120, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


def _arith_sentences() -> st.SearchStrategy[str]:
    """Arithmetic expressions with optional spaces around tokens (Hypothesis' generic
    ``from_lark`` is very slow on arith's left-recursive rules)."""
    space = st.sampled_from(["", "", " ", "  "])
    atom = st.builds(lambda a, n, b: a + n + b, space, st.from_regex(r"[0-9]{1,4}", fullmatch=True),
                     space)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(lambda a, op, b: a + op + b, inner, st.sampled_from("+-*/"), inner),
            st.builds(lambda s1, a, s2: s1 + "(" + a + ")" + s2, space, inner, space),
            st.builds(lambda s, a: s + "-" + a, space, inner),
        )

    return st.recursive(atom, extend, max_leaves=12)


@pytest.mark.parametrize("name", ["arith", "json", "keywords", "ci_keyword", "ci_upper",
                                  "less_eq", "regexes", "ignore_case", "unicode",
                                  "contextual"])
def test_generated_sentences_are_viable_at_every_prefix(name):
    """Random sentences of the grammar (Hypothesis' generator, which also inserts ignored
    tokens and draws unicode); the few that Lark's lexer reads differently are checked
    as rejections."""
    g, parser = potential(name), oracle(name)
    # the generator knows nothing of ignore_case; it only ever draws the literal spelling
    strategy = (_arith_sentences() if name == "arith"
                else from_lark(lark.Lark(CASES[name][0], parser="lalr")))

    @_FAST
    @given(strategy)
    def check(text):
        _check_generated(g, parser, text)

    check()


# ---------------------------------------------------------------------------------------
# 2. exactness against brute force, over a small alphabet
# ---------------------------------------------------------------------------------------


class BruteForce:
    """Every string over ``alphabet`` of length <= n, which of them Lark accepts, and the
    potential's answers on all of them (one fresh LarkGrammar, strings in length order).

    ``viable`` = prefixes of accepted strings.  With a proven bound ``need(x)`` on the
    length of the shortest accepted completion of x *whenever x is viable* (completions
    drawn from the alphabet), ``len(x) + need(x) <= n`` makes "x in viable" the exact
    truth: a viable x has an accepted completion within the enumeration.
    """

    def __init__(self, grammar: str, alphabet: str, n: int) -> None:
        parser = lark_parser(grammar)
        self.strings = ["".join(t) for k in range(n + 1)
                        for t in itertools.product(alphabet, repeat=k)]
        self.accepted = {s for s in self.strings if lark_accepts(parser, s)}
        self.viable = {s[:i] for s in self.accepted for i in range(len(s) + 1)}
        g = LarkGrammar(grammar)
        self.prefix = {s: g.prefix(s) for s in self.strings}
        self.complete = {s: g.complete(s) for s in self.strings}


@functools.cache
def brute(name: str) -> BruteForce:
    grammar, alphabet, n, _need = EXACT[name]
    return BruteForce(grammar, alphabet, n)


def _depth(open_: str, close: str):
    return lambda s: max(0, s.count(open_) - s.count(close))


# name -> (grammar, alphabet, n, need); each comment says why ``need`` is a bound.  None
# of these grammars has lexing ambiguity: no regex terminal is ever followed by a
# terminal that could continue it, so the documented over-approximations cannot occur.
EXACT = {
    # a viable arith prefix is finished by at most one INT (if an operand is due) and one
    # ")" per unclosed "(", all in the alphabet; INT is the only regex and is never
    # followed by a terminal that starts with a digit
    "arith": (grammars.load("arith"), "1+-() ", 6, lambda s: _depth("(", ")")(s) + 1),
    "arith_ops": (grammars.load("arith"), "2*/()", 6, lambda s: _depth("(", ")")(s) + 1),
    # JSON arrays: at most one value "1" then one "]" per unclosed "["
    "json_arrays": (grammars.load("json"), "[1,] ", 6, lambda s: _depth("[", "]")(s) + 1),
    # a top-level JSON number: "-", "0.", "1e", "1e-" each need one digit
    "json_number": (grammars.load("json"), "-0.e1", 6, lambda s: 1),
    # NAME "<" NAME | NAME "<=" NAME | NAME "<" "=" "!" (spaces ignored): only blanks ->
    # "a<a"; a NAME -> "<a"; after "<" or "<=" -> "a"; after "< =" -> "!"
    "less_eq": (LESS_EQ, "a<=! ", 6, lambda s: 3 if not s.strip() else 2),
    # keyword re-typing: "if" "(" NAME ")" | NAME "=" NAME, NAME over {i, f}: "" -> "i=i",
    # "if" (the keyword, even as a NAME) -> "(i)", any other NAME -> "=i", else <= 2
    "keyword": ('start: "if" "(" NAME ")" | NAME "=" NAME\nNAME: /[a-z]+/\n', "if(=)", 6,
                lambda s: 3 if s in ("", "if") else 2),
    # the same with a case-insensitive keyword (a terminal of its own after NAME); an
    # upper-case "I" can only start the keyword: "I" -> "If(i)" needs 4 characters
    "ci_keyword": ('start: "if"i "(" NAME ")" | NAME "=" NAME\nNAME: /[a-z]+/\n', "iIf(=)",
                   6, lambda s: 4 if "I" in s else 3),
    # contextual lexer: HEX after "k", NAME after "n"; "" -> "ka", else one character
    "contextual": (CONTEXTUAL.replace('| "x" NAME "=" HEX', ""), "knaf1", 6, lambda s: 2),
    # first-match rule across terminals: LONG "ab" wins over SHORT "a" followed by "b", so
    # the language is {"abd", "ac"} ("abc" is never SHORT "b" "c"); "" -> "ac"
    "first_match": ('start: SHORT "b" "c" | LONG "d" | SHORT "c"\nLONG: "ab"\nSHORT: "a"\n',
                    "abcd", 7, lambda s: 2),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_prefix_is_exact_against_brute_force(name):
    _grammar, _alphabet, n, need = EXACT[name]
    bf = brute(name)
    assert bf.accepted, "the alphabet must reach some sentences"
    checked = dead_checked = 0
    for s in bf.strings:
        viable = bf.prefix[s] == 0.0
        assert bf.complete[s] == (0.0 if s in bf.accepted else NEG_INF), s
        if s in bf.viable:
            assert viable, f"unsound: {s!r} extends to an accepted string"
        if len(s) + need(s) <= n:
            checked += 1
            dead_checked += s not in bf.viable
            assert viable == (s in bf.viable), f"inexact: {s!r}"
    # the bound must leave a meaningful number of strings checked both ways
    assert checked >= 100 and dead_checked >= 20, (checked, dead_checked)


def test_first_match_language_is_what_the_comment_says():
    assert brute("first_match").accepted == {"abd", "ac"}


@pytest.mark.parametrize("name", list(EXACT))
def test_dead_prefixes_stay_dead_on_every_extension(name):
    """Over the whole enumeration: prefix(x) == -inf implies prefix(x + c) == -inf."""
    _grammar, alphabet, n, _need = EXACT[name]
    bf = brute(name)
    dead = {s for s in bf.strings if bf.prefix[s] == NEG_INF}
    assert dead
    for s in dead:
        assert bf.complete[s] == NEG_INF, s
        if len(s) < n:
            for c in alphabet:
                assert s + c in dead, (s, c)


# one-terminal grammars: prefix(x) == 0 iff x is a prefix of a match of the terminal's
# regex, which the `regex` package decides independently (partial matching)
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
ONE_TERMINAL = {
    "string": (f"start: STRING\nSTRING: /{_JSON_STRING}/\n", _JSON_STRING,
               '"\\/ubnaF0\x01é😀日'),
    "number": (f"start: NUMBER\nNUMBER: /{_JSON_NUMBER}/\n", _JSON_NUMBER, "-0123.eE+9x"),
    "hex_repeat": ("start: H\nH: /#(?:[0-9a-f]{3}){1,2}/\n", r"#(?:[0-9a-f]{3}){1,2}", "#0af9g"),
}


@pytest.mark.parametrize("name", list(ONE_TERMINAL))
def test_prefix_matches_regex_partial_matching(name):
    grammar, pattern, alphabet = ONE_TERMINAL[name]
    g = LarkGrammar(grammar)
    compiled = regex.compile(pattern)

    @_FAST
    @given(st.text(st.sampled_from(alphabet), max_size=12))
    def check(text):
        expected = compiled.fullmatch(text, partial=True) is not None
        assert (g.prefix(text) == 0.0) == expected, text
        assert (g.complete(text) == 0.0) == (compiled.fullmatch(text) is not None), text

    check()


# random strings over a grammar's alphabet (longer than brute force can reach)
RANDOM = {
    "arith": (grammars.load("arith"), "12+-*/() "),
    "json": (grammars.load("json"), '{}[]",:1-.eatrufnl\\ '),
    "keywords": (KEYWORDS, "ifprnt:=; x"),
    "ci_keyword": (CI_KEYWORD, "sElectS;= x"),
    "less_eq": (LESS_EQ, "a<=! "),
}


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_strings_dead_means_no_extension_and_cache_is_irrelevant(name):
    """A text and random extensions of it: if the text is dead, no extension is accepted
    by Lark (nor viable); an accepted extension makes the text viable; and a warm instance
    (that has seen every earlier example) answers as a fresh one fed the texts in reverse
    order (longest first, so it starts from an empty cache)."""
    grammar, alphabet = RANDOM[name]
    warm = LarkGrammar(grammar)
    parser = lark_parser(grammar)
    chars = st.sampled_from(alphabet)

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.text(chars, max_size=14), st.lists(st.text(chars, max_size=8), max_size=6))
    def check(text, suffixes):
        texts = [text] + [text + suffix for suffix in suffixes]
        value = warm.prefix(text)
        answers = [(warm.prefix(t), warm.complete(t)) for t in texts]
        fresh = LarkGrammar(grammar)
        assert [(fresh.prefix(t), fresh.complete(t)) for t in texts[::-1]] == answers[::-1]
        for t, (pre, com) in zip(texts, answers, strict=True):
            ok = lark_accepts(parser, t)
            assert com == (0.0 if ok else NEG_INF), t
            if value == NEG_INF:
                assert pre == NEG_INF and not ok, t
            if ok:
                assert value == 0.0 and pre == 0.0, t

    check()


# ---------------------------------------------------------------------------------------
# 3. monotonicity on long texts (character by character, as the engine extends)
# ---------------------------------------------------------------------------------------


def test_once_dead_always_dead_character_by_character():
    rng = random.Random(3)
    g = LarkGrammar(grammars.load("json"))
    parser = lark_parser(grammars.load("json"))
    alphabet = '{}[]",:0123456789-.eEtrufalsn\\ '
    for _ in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        values = [g.prefix(text[:i]) for i in range(len(text) + 1)]
        first_dead = next((i for i, v in enumerate(values) if v == NEG_INF), None)
        if first_dead is not None:
            assert all(v == NEG_INF for v in values[first_dead:]), text
            for i in range(first_dead, len(text) + 1):
                assert not lark_accepts(parser, text[:i]), text[:i]
        assert all(v in (0.0, NEG_INF) for v in values)


# ---------------------------------------------------------------------------------------
# 4. bad input
# ---------------------------------------------------------------------------------------

BAD = {
    # Lark's grammar parser reports the unexpected ")" itself
    "syntax error in a rule": ('start: "a"\nfoo: "b" "c" )\n', 2, 14, "UnexpectedToken"),
    "unexpected character": ('start: "a"\n\nitem: "a" $ "b"\n', 3, 11, "Unexpected input"),
    "undefined rule": ('start: a\na: "x" b\n', 2, 8, "Rule 'b' used but not defined"),
    "undefined rule named in a comment first": (
        '// ?start: value  (a JSON "value")\n?start: value\n', 2, 9, "'value'"),
    "undefined terminal": ('start: "a"\n  | "b" BAR\n', 2, 9, "'BAR'"),
    "ignored terminal undefined": ('start: "a"\n%ignore WS\n', 2, 9, "WS"),
    "bad regex": ('start: "a" B\nB: /[z-a]/\n', 2, 1, "Cannot compile token B"),
    "unbalanced regex": ('start: A\n\n  A: /(ab/\n', 3, 3, "Cannot compile token A"),
    # valid alone, but inside Lark's lexer regex "(?P<A>(?:(a)b\1))" group 1 is A itself
    "back-reference in Lark's lexer": ('start: "x" A\n\nA: /(a)b\\1/\n', 3, 1,
                                       "Cannot compile token A"),
    "zero-width terminal": ('start: "x" A\nA: /a*/\n', 2, 1, "zero-width"),
    # the first definition of the colliding rules x (line 3) and y (line 4)
    "reduce/reduce collision": ('start: "q" x "c"\n     | "q" y "c"\nx: "a"\ny: "a"\n', 3, 1,
                                "Reduce/Reduce collision"),
    "rule defined twice": ('start: "a"\nstart: "b"\n', 2, 1, "more than once"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_grammar_errors_name_line_and_column(name):
    text, line, column, fragment = BAD[name]
    with pytest.raises(GrammarError) as info:
        LarkGrammar(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert f"line {line}, column {column}" in str(err)
    assert fragment in str(err)
    assert isinstance(err, ValueError)


def test_missing_start_rule_lists_the_rules():
    with pytest.raises(GrammarError, match=r"start rule 'start' is not defined") as info:
        LarkGrammar('expr: term "+" term\nterm: NUM\nNUM: /[0-9]+/\n')
    assert "rules defined: expr, term" in str(info.value)
    with pytest.raises(GrammarError, match=r"start rule 'main' is not defined.*: start"):
        LarkGrammar('start: "a"\n', start="main")


def test_other_start_rule_is_used():
    g = LarkGrammar('start: "a"\nother: "b" "c"\n', start="other")
    assert g.complete("bc") == 0.0 and g.complete("a") == NEG_INF
    assert g.prefix("b") == 0.0 and g.prefix("a") == NEG_INF


def test_strict_rejects_a_shift_reduce_conflict():
    ambiguous = 'start: e\ne: e "+" e | "a"\n'
    lax = LarkGrammar(ambiguous)  # resolved as shift, like Lark
    assert lax.complete("a+a+a") == 0.0
    with pytest.raises(GrammarError, match=r"Shift/Reduce conflict for terminal PLUS") as info:
        LarkGrammar(ambiguous, strict=True)
    assert (info.value.line, info.value.column) == (2, 1)  # where rule e is defined
    LarkGrammar(grammars.load("json"), strict=True)  # no conflict: accepted
    LarkGrammar(grammars.load("arith"), strict=True)


@pytest.mark.parametrize("bad", [b'start: "a"', None, 3, ['start: "a"']])
def test_non_str_grammar_is_a_type_error(bad):
    with pytest.raises(TypeError, match="grammar_text must be str"):
        LarkGrammar(bad)


# ---------------------------------------------------------------------------------------
# 5. the cache bound
# ---------------------------------------------------------------------------------------


def _json_texts(rng: random.Random, count: int) -> list[str]:
    def value(depth: int) -> str:
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice(["1", '"a"', "true", '"\\n"', "12.5e3", "null", '"é😀"'])
        if r < 0.65:
            return "[" + ", ".join(value(depth + 1) for _ in range(rng.randint(0, 4))) + "]"
        return "{" + ",".join(f'"k{i}": {value(depth + 1)}'
                              for i in range(rng.randint(0, 3))) + "}"

    texts = []
    for _ in range(count):
        text = value(0)
        if rng.random() < 0.5:  # an edit somewhere, often fatal
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice('[]{}",:1a \\') + text[i:]
        texts.append(text)
    texts += [t[:i] for t in texts[:25] for i in range(len(t))]
    rng.shuffle(texts)
    return texts


def test_tiny_cache_gives_identical_answers():
    texts = _json_texts(random.Random(0), 250)
    assert max(map(len, texts)) > 100  # long enough to use the strided cache entries
    big = LarkGrammar(grammars.load("json"))
    tiny = LarkGrammar(grammars.load("json"), cache_size=1)
    small = LarkGrammar(grammars.load("json"), cache_size=7)
    for text in texts:
        expected = (big.prefix(text), big.complete(text))
        assert (tiny.prefix(text), tiny.complete(text)) == expected, text
        assert (small.prefix(text), small.complete(text)) == expected, text
        # the bound holds on both caches (internal dicts, the point of cache_size)
        assert len(tiny._cache) <= 1 and len(tiny._complete_cache) <= 1
        assert len(small._cache) <= 7 and len(small._complete_cache) <= 7
    assert any(v == 0.0 for v in map(big.complete, texts))
    assert any(v == NEG_INF for v in map(big.prefix, texts))


def test_dropping_interned_stacks_gives_identical_answers():
    """The stack-node limit (forces _reset, which drops every cached configuration)."""
    texts = _json_texts(random.Random(1), 40)[:200]
    big = LarkGrammar(grammars.load("json"))
    resetting = LarkGrammar(grammars.load("json"), cache_size=5)
    resetting._MAX_STACK_NODES = 100
    resets = []
    reset = resetting._reset
    resetting._reset = lambda: (resets.append(1), reset())
    for text in texts:
        assert resetting.prefix(text) == big.prefix(text), text
        assert resetting.complete(text) == big.complete(text), text
    assert len(resets) >= 10


def test_cache_size_is_at_least_one():
    g = LarkGrammar(grammars.load("arith"), cache_size=0)
    assert g.cache_size == 1
    assert [g.prefix(t) for t in ["1+", "1+(", "1+()"]] == [0.0, 0.0, NEG_INF]


# ---------------------------------------------------------------------------------------
# 6. exact_lexing and the small API
# ---------------------------------------------------------------------------------------


def test_exact_lexing():
    assert LarkGrammar(grammars.load("json")).exact_lexing is True
    assert LarkGrammar(grammars.load("arith")).exact_lexing is True
    assert potential("keywords").exact_lexing is True
    assert potential("lookahead").exact_lexing is False
    assert LarkGrammar('start: A\nA: /\\bfoo/\n').exact_lexing is False
    assert LarkGrammar('start: A\nA: /(?P<q>["\'])x(?P=q)/\n').exact_lexing is False
    # widened, but still sound: "aab" is accepted and all its prefixes are viable
    g = potential("lookahead")
    assert [g.prefix(t) for t in ["", "a", "aa", "aab"]] == [0.0] * 4
    assert g.complete("aab") == 0.0 and g.complete("aa") == NEG_INF


def test_small_api():
    g = LarkGrammar(grammars.load("arith"), start="start")
    assert set(g.terminals) >= {"INT", "WS", "PLUS", "LPAR", "RPAR"}
    assert "terminals=" in repr(g) and "start='start'" in repr(g)
    assert g.parse("1+2").data == "add"
    with pytest.raises(lark.exceptions.UnexpectedInput):
        g.parse("1+")
    assert g.prefix_batch(["1", "1+", "1+)"]) == [0.0, 0.0, NEG_INF]
    assert g.complete_batch(["1", "1+"]) == [0.0, NEG_INF]
    assert all(isinstance(v, float) and (v == 0.0 or math.isinf(v))
               for v in g.prefix_batch(["", "(", ")"]))


def test_empty_language_is_an_error_before_any_generation():
    with pytest.raises(GrammarError, match="language of start rule 'start' is empty") as info:
        LarkGrammar('start: a\na: a "x" | b\nb: "y" b\n')
    assert (info.value.line, info.value.column) == (1, 1)
    assert "a, b" in str(info.value)
    LarkGrammar('start: a\na: a "x" | "y"\n')  # left recursion with a base case is fine


def test_lark_overlap_scan_is_skipped_and_its_switch_restored(monkeypatch):
    """Lark's interegular scan of terminal overlaps only logs warnings: not run here."""
    import types

    import lark.lexer as lark_lexer

    def scan(*_args, **_kwargs):
        raise AssertionError("Lark's overlap scan ran")

    monkeypatch.setattr(lark_lexer, "has_interegular", True)
    monkeypatch.setattr(lark_lexer, "_check_regex_collisions", scan)
    monkeypatch.setattr(lark_lexer, "interegular", types.SimpleNamespace(
        Comparator=types.SimpleNamespace(from_regexes=scan)), raising=False)
    g = LarkGrammar('start: WORD ("," WORD)*\nWORD: /[a-z]+/\n%ignore " "\n')
    assert g.complete("ab, c") == 0.0 and lark_lexer.has_interegular is True
