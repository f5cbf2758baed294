"""A small arithmetic critic used by the demo: how close an expression comes to a target.

``complete(x) = −|value(x) − target| / scale`` (−inf if ``x`` does not evaluate),
so π(x) ∝ p(x)·exp(−|value − target| / scale).  The expression is evaluated by
walking Python's AST over numbers and + − × ÷ only: nothing is executed.
"""

from __future__ import annotations

import ast
import operator

from potentials.base import NEG_INF, Potential

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression, or None if it is not one (or divides by 0)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = walk(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError("not arithmetic")

    try:
        return walk(tree.body)
    except (ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


class ArithmeticTarget(Potential):
    """Soft critic: prefers complete expressions whose value is near ``target``."""

    def __init__(self, target: float, scale: float = 1.0) -> None:
        self.target = float(target)
        self.scale = float(scale)

    def prefix(self, text: str) -> float:
        return 0.0  # log Φ ≤ 0 everywhere: 0 is an upper bound for any prefix

    def complete(self, text: str) -> float:
        value = evaluate(text)
        if value is None:
            return NEG_INF
        return -abs(value - self.target) / self.scale

    def evaluate_at(self, text: str) -> bool:
        return False  # nothing to learn from a prefix: only the end scores

    def __repr__(self) -> str:
        return f"ArithmeticTarget({self.target:g})"
