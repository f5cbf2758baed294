"""The Python critic: compiles, runs its definitions in the sandbox, lint-clean as it goes.

For a finished program y (run after ``context``, e.g. a HumanEval prompt's imports):

    log Φ(y) = −inf  if y does not compile, or (``entry_point`` given) y defines no
                     top-level function of that name, or the runnable top-level
                     statements of context + y (imports, def, class, assignments that call
                     no function defined above; ``python_source.runnable``) raise, time
                     out or are refused in the sandbox;
             = −λ·|U(y)| otherwise,

where U(y) is the set of undefined names (pyflakes: (line, column, name)) reported at
*any* statement boundary of y, LintSeq-style: every boundary prefix of the program (its
open blocks closed with ``pass``) must be free of undefined names, so a name must be
bound (textually) before the line that uses it ends.  λ = ``lint_penalty`` (``inf``
makes the lint a hard constraint, 0 turns it off).

``prefix(x)`` is an upper bound of Φ over completions of x, evaluated at the longest
statement boundary of x (``python_source.at_boundary``): −inf only for what no
completion can undo (a final compile error of the closed prefix; a raise of its fixed
runnable statements, which every completion executes first, in the same order), plus
−λ·|U(x)|, where U(x) ⊆ U(y) because x's boundaries are y's.  ``evaluate_at`` is that
boundary test.  Results are cached per text (particles share prefixes).  Assumes the
runnable statements are deterministic (time-outs near the limit are not).  Once a
boundary prefix is −inf every longer text is −inf, also off the grammar.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from potentials import python_source as src
from potentials.base import NEG_INF, Potential


class _Cache(OrderedDict):
    """A bounded LRU dict."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class PythonCritic(Potential):
    """Semantic critic of Python programs (module doc); runs code only in ``smc.sandbox``."""

    def __init__(self, context: str = "", entry_point: str | None = None, *,
                 timeout: float = 2.0, memory_mb: int = 512, lint_penalty: float = 3.0,
                 sandbox=None, cache_size: int = 100_000) -> None:
        if not isinstance(context, str):
            raise TypeError(f"context must be a str, got {type(context).__name__}")
        if context.strip() and src.compile_error(context) is not None:
            raise ValueError(f"the context does not compile: {src.compile_error(context)}")
        if entry_point is not None and not entry_point.isidentifier():
            raise ValueError(f"entry_point must be an identifier, got {entry_point!r}")
        if not (isinstance(lint_penalty, int | float) and lint_penalty >= 0):
            raise ValueError(f"lint_penalty must be a number >= 0, got {lint_penalty!r}")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number, got {timeout!r}")
        if sandbox is None:
            from smc import sandbox as _sandbox_module
            sandbox = _sandbox_module.default()
        self.context = context if not context or context.endswith("\n") else context + "\n"
        self.entry_point = entry_point
        self.timeout, self.memory_mb = float(timeout), int(memory_mb)
        self.lint_penalty = float(lint_penalty)
        self.sandbox = sandbox
        ctx_tree = src.parse(self.context) if self.context.strip() else None
        self._ctx_functions = src.defined_functions(ctx_tree.body) if ctx_tree else set()
        self._ctx_lines = self.context.count("\n")
        self._boundary = _Cache(cache_size)
        self._prefix = _Cache(cache_size)
        self._runs = _Cache(cache_size)
        self._lint = _Cache(cache_size)
        self.runs = 0                       # sandbox round trips so far (for reports)
        self.last_failure: str | None = None

    # -- schedule -----------------------------------------------------------------------
    def evaluate_at(self, text: str) -> bool:
        if not text.endswith("\n"):
            return False
        hit = self._boundary.get(text)
        return self._boundary.put(text, src.at_boundary(text)) if hit is None else hit

    def _last_boundary(self, text: str) -> str:
        end = len(text)
        while end > 0:
            cut = text.rfind("\n", 0, end)
            if cut < 0:
                return ""
            if self.evaluate_at(text[:cut + 1]):
                return text[:cut + 1]
            end = cut
        return ""

    # -- the three factors --------------------------------------------------------------
    def _run(self, stmts) -> bool:
        """Whether context + the runnable ones of ``stmts`` run cleanly in the sandbox."""
        code = self.context + src.source_of(src.runnable(stmts, self._ctx_functions))
        if not code.strip():
            return True
        hit = self._runs.get(code)
        if hit is not None:
            return hit
        self.runs += 1
        res = self.sandbox.run(code, timeout=self.timeout, memory_mb=self.memory_mb,
                               max_output=2048)
        if not res.ok:
            self.last_failure = f"{res.status}: {res.exception}"
        return self._runs.put(code, res.ok)

    def _undefined(self, text: str) -> frozenset:
        """U(text) for a boundary ``text``: the union of the reports at its boundaries."""
        hit = self._lint.get(text)
        if hit is not None:
            return hit
        earlier = self._last_boundary(text[:-1]) if len(text) > 1 else ""
        below = self._undefined(earlier) if earlier else frozenset()
        here = src.undefined_names(self.context + src.close_blocks(text), self._ctx_lines + 1)
        lines = text.count("\n")
        return self._lint.put(text, below | {k for k in here if k[0] <= lines})

    def _lint_weight(self, text: str) -> float:
        if self.lint_penalty == 0.0:
            return 0.0
        n = len(self._undefined(text))
        return 0.0 if n == 0 else (NEG_INF if math.isinf(self.lint_penalty)
                                   else -self.lint_penalty * n)

    # -- the potential ------------------------------------------------------------------
    def prefix(self, text: str) -> float:
        text = text if self.evaluate_at(text) else self._last_boundary(text)
        if not text.strip():
            return 0.0
        hit = self._prefix.get(text)
        if hit is not None:
            return hit
        value = 0.0
        earlier = self._last_boundary(text[:-1])
        error = src.final_error(text)
        if earlier and self.prefix(earlier) == NEG_INF:
            value = NEG_INF                       # once -inf, -inf (even off the grammar)
        elif error is not None:
            self.last_failure = f"compile: {error}"
            value = NEG_INF
        else:
            tree = src.parse(src.close_blocks(text))
            if tree is not None and not self._run(src.fixed_statements(tree)):
                value = NEG_INF
        if value == 0.0:
            value = self._lint_weight(text)
        return self._prefix.put(text, value)

    def complete(self, text: str) -> float:
        if not isinstance(text, str):
            return NEG_INF
        error = src.compile_error(text)
        tree = src.parse(text) if error is None else None
        if tree is None:
            self.last_failure = f"compile: {error.msg if error else 'does not parse'}"
            return NEG_INF
        if self.entry_point and self.entry_point not in {
                s.name for s in tree.body if isinstance(s, src.ast.FunctionDef
                                                        | src.ast.AsyncFunctionDef)}:
            self.last_failure = f"no top-level function {self.entry_point}"
            return NEG_INF
        if not self._run(tree.body):
            return NEG_INF
        if self.lint_penalty == 0.0:
            return 0.0
        final = text if text.endswith("\n") else text + "\n"
        if not self.evaluate_at(final):
            return NEG_INF                        # compiles, yet no logical line end: odd
        return self._lint_weight(final)

    def __repr__(self) -> str:
        return (f"PythonCritic(entry_point={self.entry_point!r}, "
                f"lint_penalty={self.lint_penalty})")
