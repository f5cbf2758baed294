"""Static facts about a *prefix* of a Python program that no completion can change.

Used by ``potentials.python_critic``.  Every function here is sound for prefixes: it
only reports what holds for every completion of the text.

* ``at_boundary(text)``: ``text`` ends a logical line (newline outside brackets, strings
  and backslash continuations) — the critic's evaluation points.
* ``close_blocks(text)``: ``text`` plus ``pass`` in the block its last line opens, so a
  boundary prefix of a program usually compiles as it stands.
* ``final_error(text)``: a compile error of ``close_blocks(text)`` that lies in ``text``
  and that no later text can undo ('return' outside function, duplicate argument,
  cannot assign to a call ...), else None.
* ``fixed_statements(tree)``: the top-level statements that no completion can extend
  (all but a trailing compound statement, which may still grow a body or an else).
* ``runnable(stmts, defined)``: the statements the critic executes: imports, def, class
  and assignments that call no function defined above (never the function under test).
* ``undefined_names(program, first_line)``: pyflakes' undefined-name reports at or after
  ``first_line``, as (line, column, name) keys.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

from pyflakes import checker as _pyflakes
from pyflakes import messages as _msgs

_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For,
             ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith,
             getattr(ast, "TryStar", ast.Try), getattr(ast, "Match", ast.Try))
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# compile errors decided by the text they point at: no later text can remove them
_FINAL_MESSAGES = (
    "outside function", "outside loop", "not properly in loop", "outside async function",
    "duplicate argument", "cannot assign to", "cannot delete", "keyword argument repeated",
    "nonlocal declaration not allowed at module level", "is parameter and global",
    "is parameter and nonlocal", "before global declaration", "before nonlocal declaration",
    "prior to global declaration", "prior to nonlocal declaration", "annotated name",
    "inside list comprehension", "inside set comprehension", "inside dict comprehension",
    "inside generator expression", "starred assignment target must be in a list or tuple",
    "can't use starred expression here", "cannot use starred expression here",
    "positional argument follows keyword argument", "iterable argument unpacking follows",
)
_UNDEFINED = (_msgs.UndefinedName, _msgs.UndefinedLocal)


def _tokens(text: str):
    """Tokens of ``text``; raises tokenize.TokenError / IndentationError / SyntaxError."""
    return list(tokenize.generate_tokens(io.StringIO(text).readline))


def at_boundary(text: str) -> bool:
    """Whether ``text`` ends a logical line (and tokenizes: no open bracket or string)."""
    if not text.endswith("\n"):
        return False
    try:
        toks = _tokens(text)
    except (tokenize.TokenError, SyntaxError):
        return False
    significant = [t for t in toks if t.type not in (tokenize.NL, tokenize.COMMENT,
                                                     tokenize.INDENT, tokenize.DEDENT,
                                                     tokenize.ENDMARKER)]
    # a line continued by "\" leaves no NEWLINE after the last token
    return not significant or significant[-1].type == tokenize.NEWLINE


def close_blocks(text: str) -> str:
    """``text`` with ``pass`` in the block its last logical line opens (if it ends in ':')."""
    try:
        toks = [t for t in _tokens(text) if t.type not in (
            tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)]
    except (tokenize.TokenError, SyntaxError):
        return text
    if len(toks) >= 2 and toks[-1].type == tokenize.NEWLINE and toks[-2].string == ":":
        first = toks[0]                   # the first token of the last logical line
        for prev, tok in zip(toks, toks[1:], strict=False):
            if prev.type == tokenize.NEWLINE:
                first = tok
        indent = first.line[: first.start[1]]
        return text + indent + "    pass\n"
    return text


def compile_error(source: str) -> SyntaxError | None:
    """The SyntaxError CPython raises compiling ``source`` (parser and compiler), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(source, "<output>", "exec", dont_inherit=True)
        except SyntaxError as exc:  # includes IndentationError / TabError
            return exc
        except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
            return SyntaxError(str(exc))
    return None


def final_error(text: str) -> str | None:
    """A compile error of the boundary prefix ``text`` that every completion keeps."""
    exc = compile_error(close_blocks(text))
    if exc is None or not exc.lineno or exc.lineno > text.count("\n"):
        return None
    msg = str(exc.msg)
    return msg if any(m in msg for m in _FINAL_MESSAGES) else None


def parse(source: str) -> ast.Module | None:
    """``ast.parse(source)`` or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
            return None


def fixed_statements(tree: ast.Module) -> list[ast.stmt]:
    """Top-level statements of a boundary prefix that no completion can extend."""
    body = list(tree.body)
    if body and isinstance(body[-1], _COMPOUND):
        body.pop()
    return body


def defined_functions(stmts: list[ast.stmt]) -> set[str]:
    """Names bound by top-level def / class statements."""
    return {s.name for s in stmts if isinstance(s, _DEFS)}


def runnable(stmts: list[ast.stmt], defined: set[str]) -> list[ast.stmt]:
    """The statements to execute, in order: imports, def, class, and assignments that call
    no function defined (by ``defined`` or a def / class) before them.  The choice of each
    statement depends only on it and what precedes it, so a prefix's choice is a prefix
    of every completion's."""
    names = set(defined)
    kept: list[ast.stmt] = []
    for s in stmts:
        if isinstance(s, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef
                      | ast.ClassDef):
            kept.append(s)
        elif isinstance(s, ast.Assign | ast.AnnAssign | ast.AugAssign):
            calls = {n.func.id for n in ast.walk(s)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            if not calls & names:
                kept.append(s)
        if isinstance(s, _DEFS):
            names.add(s.name)
    return kept


def source_of(stmts: list[ast.stmt]) -> str:
    """Source text of ``stmts`` as a module (``ast.unparse``)."""
    return ast.unparse(ast.Module(body=stmts, type_ignores=[])) + "\n" if stmts else ""


def undefined_names(program: str, first_line: int) -> frozenset[tuple[int, int, str]]:
    """pyflakes' undefined names of ``program`` on lines >= ``first_line`` (1-based), as
    (line - first_line + 1, column, name); empty when it does not parse."""
    tree = parse(program)
    if tree is None:
        return frozenset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = _pyflakes.Checker(tree, filename="<output>").messages
    return frozenset((m.lineno - first_line + 1, m.col, str(m.message_args[0]))
                     for m in found if isinstance(m, _UNDEFINED) and m.lineno >= first_line)
