"""A chat model's reply that holds Python code: an optional Markdown fence, then the code,
then (after a closing fence) free text, as ``grammars/python.lark``'s ``function`` rule
allows.

``split_reply(reply)`` reads the code back out; ``ReplyCritic`` applies a code critic to
it, so that a critic of programs (``PythonCritic``) scores the replies the grammar admits:

    log Φ_reply(x) = log Φ_code(code(x)),

with ``prefix`` the inner critic's prefix of the code so far, and, once the closing fence
is written (the code can no longer change), the inner ``complete`` of the code: exact, so
a particle whose finished code fails is dropped at the fence, not at EOS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from potentials import python_source as src
from potentials.base import Potential

_OPEN = re.compile(r"[\t \f]*```")          # the grammar ignores spaces before the fence


@dataclass(frozen=True)
class Reply:
    """The parts of a reply: ``code`` (without the fences), whether an opening fence is
    (being) written, whether the closing fence ended the code, and the text after it."""

    code: str
    fenced: bool
    closed: bool
    epilogue: str = ""


def _closing_fence(text: str, start: int) -> int:
    """Index of the closing fence in ``text`` (a line that starts with ``` after a complete
    logical line, i.e. not inside a string or brackets), or -1."""
    i = text.find("\n```", start)
    while i >= 0:
        if src.at_boundary(text[start:i + 1]):
            return i + 1
        i = text.find("\n```", i + 1)
    return -1


def split_reply(reply: str) -> Reply:
    """The code of a (possibly unfinished) reply; see the module doc.

    An opening fence line still being written gives empty code.  A closing fence is only
    recognised where the grammar allows one (column 0, outside strings and brackets)."""
    start, fenced = 0, False
    m = _OPEN.match(reply)
    if m:
        fenced = True
        newline = reply.find("\n", m.end())
        if newline < 0:
            return Reply("", True, False)
        start = newline + 1
    end = _closing_fence(reply, start)
    if end < 0:
        return Reply(reply[start:], fenced, False)
    after = reply[end:]
    return Reply(reply[start:end], fenced, True, after[3:] if after.startswith("```") else "")


class ReplyCritic(Potential):
    """``inner`` (a critic of code) applied to the code of a reply (module doc)."""

    def __init__(self, inner: Potential) -> None:
        self.inner = inner

    def evaluate_at(self, text: str) -> bool:
        r = split_reply(text)
        return r.closed or self.inner.evaluate_at(r.code)

    def prefix(self, text: str) -> float:
        r = split_reply(text)
        return self.inner.complete(r.code) if r.closed else self.inner.prefix(r.code)

    def complete(self, text: str) -> float:
        return self.inner.complete(split_reply(text).code)

    def __getattr__(self, name: str):
        # the inner critic's reporting attributes (entry_point, runs, last_failure, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"ReplyCritic({self.inner!r})"
