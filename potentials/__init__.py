"""Potentials: non-negative scores of text (log-weights) used as constraints or critics."""

from potentials.base import NEG_INF, FunctionPotential, Potential, Product
from potentials.lark_grammar import GrammarError, LarkGrammar
from potentials.tree_sitter import TreeSitter

__all__ = ["NEG_INF", "FunctionPotential", "GrammarError", "LarkGrammar", "Potential", "Product",
           "TreeSitter"]
