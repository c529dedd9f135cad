"""``{name}`` placeholders: which a text uses, and filling them in. Pure.

``{{`` and ``}}`` are literal braces; a lone ``{`` or ``}`` is an error (``workspace {local/x`` would otherwise
create a folder literally named ``{local``). A value that carries control characters (a newline, a NUL) is refused
when it is filled in: such a value, written into a cfg or a .names file, would change the file's structure
(``burn_in={v}`` with ``v = "0\\n[convolutional]"`` would add a section).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Mapping, Optional

from ..errors import DirectiveError

__all__ = ["BUILTIN_PLACEHOLDERS", "placeholders", "expand", "check_braces"]

# Placeholders that always have a value (the session fills them): fast local disk, the working folder, home.
BUILTIN_PLACEHOLDERS = ("local", "cwd", "home")

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _scan(text: str) -> Iterator[re.Match]:
    return _TOKEN.finditer(text)


def check_braces(text: str) -> Optional[int]:
    """The column of the first brace that is neither ``{{``, ``}}`` nor part of ``{name}``; None when all are."""
    for m in _scan(text):
        if m.group(0) in ("{", "}"):
            return m.start()
    return None


def placeholders(text: str) -> list[str]:
    """The placeholder names used in `text`."""
    return [m.group(1) for m in _scan(text) if m.group(1) is not None]


def expand(text: str, values: Mapping[str, Any], *, lineno: Optional[int] = None, directive: Optional[str] = None,
           source: Optional[str] = None, fix_for: Optional[Callable[[str], str]] = None) -> str:
    """Replace ``{name}`` with ``values[name]`` (``{{``/``}}`` give literal braces).

    Raises:
        DirectiveError: a name without a value (its fix from `fix_for`), or a value with control characters.
    """
    def sub(m: re.Match) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = m.group(1)
        if name is None:  # a lone brace: parse_line refuses it, so only an unparsed text gets here
            return token
        value = values.get(name)
        if value is None:
            raise DirectiveError(f"placeholder {{{name}}} has no value yet", lineno=lineno, directive=directive,
                                 source=source, fix=fix_for(name) if fix_for else f"set {name}=VALUE first")
        value = str(value)
        if _CONTROL.search(value):
            raise DirectiveError(f"the value of {{{name}}} has a control character ({value[:40]!r}): written into a "
                                 "darknet file it would change the file's structure", lineno=lineno,
                                 directive=directive, source=source,
                                 fix=f"give {name} a value on one line, without newlines or control characters")
        return value

    return _TOKEN.sub(sub, text)
