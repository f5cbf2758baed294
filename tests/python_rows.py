"""Accept/reject rows of the shipped Python grammar (first dead column from the engine)."""
# ruff: noqa: E501  (data: one program per line)
PYTHON_ACCEPT = [
    '',  # empty
    '# a comment\n\n   # indented comment\n',  # comments_only
    "def f(a, b: int, c=1, d: str = 'x', *args: int, e, f=2, **kwargs: dict) -> list[int]:\n    return [a, b, c, d, args, e, f, kwargs]\n",  # def_full_signature
    'def f(a, b=2, /, c=3, *, d, e=5, **k):\n    pass\n\n\ndef g(*, key):\n    pass\n',  # def_positional_only_kw_only
    'f = lambda: 0\ng = lambda x, y=1, *a, z, **k: x + y\nh = lambda *, k=1: k\ns = sorted(xs, key=lambda t: (t[1], -t[0]))\n',  # lambdas
    'if x > 0:\n    s = 1\nelif x < 0:\n    s = -1\nelif x == 0:\n    s = 0\nelse:\n    s = None\n',  # if_elif_else
    'for i in range(10):\n    if i % 2:\n        continue\n    if i > 7:\n        break\nelse:\n    pass\nwhile n > 0:\n    n -= 1\nelse:\n    n = 10\n',  # for_while_else
    'for i, (a, b) in enumerate(pairs):\n    pass\nfor x, in [(1,)]:\n    pass\nfor first, *rest in rows:\n    pass\n',  # for_unpacking_targets
    "try:\n    x = int(s)\nexcept (ValueError, TypeError) as e:\n    raise RuntimeError('bad') from e\nexcept KeyError:\n    pass\nexcept:\n    raise\nelse:\n    x += 1\nfinally:\n    done = True\n",  # try_except_else_finally
    'try:\n    f()\nfinally:\n    g()\n',  # try_finally_only
    "with open(p) as f, open(q, 'w') as g:\n    g.write(f.read())\nwith lock:\n    pass\nwith ctx() as (a, b):\n    pass\n",  # with_statements
    "assert x, 'message'\nassert y\nraise ValueError(f'bad {x!r}')\n",  # raise_assert
    'import os\nimport os.path as osp, sys\nfrom collections import defaultdict, Counter as C\nfrom typing import (\n    List,\n    Optional,\n)\nfrom . import sibling\nfrom ..pkg.mod import name\nfrom math import *\n',  # imports
    'count = 0\n\n\ndef bump():\n    global count\n    count += 1\n\n\ndef outer():\n    x = 1\n\n    def inner():\n        nonlocal x\n        x = 2\n    inner()\n    del x\ndel a[0], b.c, d\n',  # global_nonlocal_del
    '@dataclass(frozen=True)\nclass Point(Base, metaclass=Meta):\n    """A point."""\n\n    x: int = 0\n    y: int\n\n    @property\n    def norm(self) -> float:\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n\n    @staticmethod\n    @functools.lru_cache(maxsize=None)\n    def make():\n        return Point()\n\n\nclass Empty:\n    ...\n',  # class_with_decorators
    'async def main(urls):\n    async with session() as s:\n        async for r in s.get(urls):\n            await r.close()\n    return [await f(u) async for u in urls if u]\n',  # async_await
    'def gen():\n    yield\n    yield 1\n    yield 1, 2\n    x = yield\n    y = yield from other()\n    z = (yield)\n',  # yield_forms
    'a = [x * y for x in range(3) for y in range(x) if x if y % 2 == 0]\nb = {k: v for k, v in d.items() if v is not None}\nc = {c for c in s}\nd = (i for i in it)\ne = sum(x for x in xs)\nf = [[c for c in row] for row in grid]\ng = [x if x > 0 else -x for x in xs]\n',  # comprehensions
    'r = a + b - c * d / e // f % g ** -h @ m\nr = a << 1 >> 2 & 3 | 4 ^ ~5\nr = not a and b or c\nr = 1 < x <= 10 != y == z > w >= 0\nr = a in b and c not in d and e is f and g is not None\nr = x if cond else y\nr = -x ** 2\n',  # operators
    'if (n := len(a)) > 10:\n    pass\nwhile chunk := f.read(10):\n    pass\nys = [y for x in xs if (y := g(x))]\nprint(z := 5, q := 6)\n',  # walrus
    'a[1:2]\na[::2]\na[::-1]\na[1:]\na[:-1]\na[:]\na[1:10:3]\nm[1:2, ::3]\nm[i, j]\nm[i,]\n',  # slicing
    "a, *b = c\n*a, b = c\nfirst, *middle, last = seq\nx = [*a, *b]\ny = {**d, 'k': 1}\nf(*args, **kwargs)\nt = *a, b\ns = {*a, *b}\n",  # starred
    "f(1, 2, key=3, *rest, other=4, **kw)\nprint('x', end='', sep=' ')\nsorted(xs, key=len, reverse=True)\nf(a, *b, c=1, *d, e=2, **f)\n",  # keyword_arguments
    'a, b = b, a\n(a, b), c = x\n[a, b] = 1, 2\na = b = c = 0\nx, = t\n',  # tuple_unpacking_and_chains
    'x += 1\nx -= 1\nx *= 2\nx /= 2\nx //= 2\nx %= 3\nx **= 2\nx >>= 1\nx <<= 1\nx &= 1\nx |= 1\nx ^= 1\nm @= n\nself.count += 1\na[i] -= 1\n',  # augmented_assignment
]
PYTHON_REJECT = [  # (text, first column after which no completion is accepted)
    ('if x\n    pass\n', 4),  # missing_colon_if
    ('def f()\n    return 1\n', 7),  # missing_colon_def
    ('class A\n    pass\n', 7),  # missing_colon_class
    ('x = 1\n    y = 2\n', 10),  # unexpected_indent
    ('def f():\n    x = 1\n        y = 2\n', 27),  # unexpected_indent_in_block
    ('if x:\n        a = 1\n    b = 2\n', 24),  # unindent_mismatch
    ('def f():\n', None),  # def_without_body_eof
    ('def f():\nx = 1\n', 9),  # def_without_body_dedent
    ('x = (1, 2\n', None),  # unclosed_paren_eof
    ('x = [1,\n     2\n', None),  # unclosed_bracket_eof
    ("f({'a': 1)\n", 9),  # unclosed_brace_in_call
    ('def f():\n    return a b\n', 23),  # return_two_expressions
    ('else:\n    pass\n', 4),  # else_without_if
    ('if a:\n    pass\nelse:\n    pass\nelif b:\n    pass\n', 34),  # elif_after_else
    ('except ValueError:\n    pass\n', 7),  # except_without_try
    ('try:\n    pass\nx = 1\n', 14),  # try_without_handler
    ('try:\n    pass\nexcept:\n    pass\nexcept ValueError:\n    pass\n', 37),  # bare_except_not_last
    ('x = 1 \\ y = 2\n', 7),  # continuation_then_statement
    ('x = 1 + \\ \n    2\n', 9),  # continuation_with_trailing_space
    ('x = 1 +\n', 7),  # incomplete_expression
    ("s = 'abc\n", 8),  # unterminated_string
    ("s = '''abc\n", None),  # unterminated_triple_string
    ('else = 1\n', 5),  # keyword_as_name
    ('if x:\n    else: y\n', 14),  # clause_word_first_in_block
    ('\nelse: y\n', 5),  # clause_word_after_blank_line
    ('x = a.finally\n', 13),  # clause_word_as_attribute
    ('f(except=1)\n', 8),  # clause_word_as_kwarg
    ('x = a + if\n', 10),  # keyword_as_operand
    ('import def\n', 10),  # keyword_as_import
    ('f = lambda pass: 0\n', 15),  # keyword_as_lambda_parameter
]
