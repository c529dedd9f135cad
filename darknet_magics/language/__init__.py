"""The directive language, pure: specs (`specs`), placeholders (`placeholders`), parsing (`parse`).

Nothing here knows a directive by name: each directive module in `darknet_magics.directives` declares its `Spec`,
and the registry there makes the `Grammar` that the parser checks lines against.
"""
from .parse import CellError, Grammar, Plan, Step, Token, overview, parse_cell, parse_line, parse_yolo, tokenize
from .placeholders import BUILTIN_PLACEHOLDERS, expand, placeholders
from .specs import KINDS, Opt, Pos, Spec, convert

__all__ = ["CellError", "Grammar", "Plan", "Step", "Token", "overview", "parse_cell", "parse_line", "parse_yolo",
           "tokenize", "BUILTIN_PLACEHOLDERS", "expand", "placeholders", "KINDS", "Opt", "Pos", "Spec", "convert"]
