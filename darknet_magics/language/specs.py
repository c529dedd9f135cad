"""What a directive accepts: `Pos`, `Opt`, `Spec`, and the table of option kinds (converter, hint, example).

A `Spec` is data: the parser reads it to check a line, the help text and the docs are made from it, and each
directive module in `darknet_magics.directives` declares its own. Option kinds live in one table (`KINDS`) so that
a new kind is one row: how its text converts, the hint the usage line shows, and the example a fix suggests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import DirectiveError

__all__ = ["Pos", "Opt", "Spec", "Kind", "KINDS", "convert"]


class BadValue(ValueError):
    """A converter's refusal; its text says what is expected ("a whole number")."""


def _int(text: str) -> int:
    # a bounded length: a 10,000-digit number is a typo, and int() of it is slow
    if not re.fullmatch(r"\d{1,18}", text):
        raise BadValue("a whole number >= 0" if text.lstrip("-").isdigit() else "a whole number")
    return int(text)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue("a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadValue("a finite number")
    return value


def _bool01(text: str) -> int:
    if text in ("0", "1"):
        return int(text)
    raise BadValue("0 or 1")


_ON = ("on", "1", "yes", "true")
_OFF = ("off", "0", "no", "false")


def _onoff(text: str) -> bool:
    low = text.lower()
    if low in _ON:
        return True
    if low in _OFF:
        return False
    raise BadValue("on or off")


def _ints(text: str) -> str:
    if re.fullmatch(r"\d{1,4}(,\d{1,4})*", text):
        return text
    raise BadValue("comma-separated numbers such as 0,1")


def _arch(text: str) -> str:
    if text.lower() == "auto":
        return "auto"
    caps = []
    for part in text.split(","):
        m = re.fullmatch(r"(?:sm_|compute_)?(\d)\.?(\d)", part.strip())
        if not m:
            raise BadValue("auto, or compute capabilities such as 75 or 7.5,8.6")
        caps.append(m.group(1) + m.group(2))
    return ",".join(caps)


def _text(text: str) -> str:
    if text == "":
        raise BadValue("a value")
    return text


@dataclass(frozen=True)
class Kind:
    """One option kind: `convert` turns the text into its value (or raises BadValue), `hint` is shown in the usage
    line (``jobs=N``), `example` in a fix (``write jobs=4``)."""

    convert: Callable[[str], Any]
    hint: str
    example: str


KINDS: dict[str, Kind] = {
    "int": Kind(_int, "N", "4"),
    "float": Kind(_float, "X", "0.25"),
    "bool01": Kind(_bool01, "0|1", "1"),
    "onoff": Kind(_onoff, "on|off", "on"),
    "ints": Kind(_ints, "0,1", "0,1"),
    "arch": Kind(_arch, "auto|75,86", "auto"),
    "path": Kind(_text, "PATH", "PATH"),
    "str": Kind(_text, "VALUE", "VALUE"),
    "names": Kind(_text, "FILE|a,b,c", "a,b,c"),
}


@dataclass(frozen=True)
class Pos:
    """A positional argument."""

    name: str
    help: str
    required: bool = True
    many: bool = False  # the last positional may take several words (kept one per line in Step.args)


@dataclass(frozen=True)
class Opt:
    """A ``key=value`` option; `kind` is a key of `KINDS`."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None
    required: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}; known: {', '.join(KINDS)}")


def convert(opt: Opt, value: str, *, lineno: Optional[int] = None, directive: Optional[str] = None,
            source: Optional[str] = None) -> Any:
    """`value` converted by `opt`'s kind, or a DirectiveError that says what is accepted and gives an example."""
    try:
        result = KINDS[opt.kind].convert(value)
    except BadValue as why:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise DirectiveError(f"{opt.name}={shown!r} is not valid: expected {why}", lineno=lineno, directive=directive,
                             source=source, fix=f"write {opt.name}={KINDS[opt.kind].example}") from None
    if opt.choices and result not in opt.choices:
        raise DirectiveError(f"{opt.name}={value!r} is not one of {', '.join(opt.choices)}", lineno=lineno,
                             directive=directive, source=source, fix=f"write {opt.name}={opt.choices[0]}")
    return result


@dataclass(frozen=True)
class Spec:
    """What one directive (a ``%%darknet`` line) or ``%yolo`` subcommand accepts, and its help text.

    `check` is the directive's own rule over a parsed step (e.g. ``data``: either ``train=`` or ``images=``),
    run at parse time; `establishes` names the placeholders its run gives a value to; `order` sorts the help.
    """

    name: str
    language: str  # "darknet" (a %%darknet line) or "yolo" (a %yolo subcommand)
    summary: str
    positionals: tuple[Pos, ...] = ()
    options: tuple[Opt, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    allows_as: bool = False
    open_options: bool = False  # any other key=value is accepted (``%yolo cfg`` sets it in the cfg)
    establishes: tuple[str, ...] = ()
    example: str = ""
    notes: str = ""
    check: Optional[Callable[[Any], None]] = None  # gets the parsed `parse.Step` (this module is below parse)
    order: int = 100

    def option(self, key: str) -> Optional[Opt]:
        """The option called `key` (make's ``GPU=1`` may be written ``gpu=1``), or None."""
        for opt in self.options:
            if opt.name == key:
                return opt
        for opt in self.options:
            if opt.name.lower() == key.lower():
                return opt
        return None

    @property
    def flag_names(self) -> frozenset[str]:
        return frozenset(f for f, _ in self.flags)

    def usage(self) -> str:
        parts = [self.name if self.language == "darknet" else f"%yolo {self.name}"]
        for p in self.positionals:
            name = p.name + ("..." if p.many else "")
            parts.append(name if p.required else f"[{name}]")
        for o in self.options:
            value = "|".join(o.choices) if o.choices else KINDS[o.kind].hint
            parts.append(f"{o.name}={value}" if o.required else f"[{o.name}={value}]")
        parts += [f"[{f}]" for f, _ in self.flags]
        if self.open_options:
            parts.append("[KEY=VALUE ...]")
        if self.allows_as:
            parts.append("[as NAME]")
        return " ".join(parts)

    def help(self) -> str:
        lines = [f"usage: {self.usage()}", "", self.summary]
        if self.positionals:
            lines += ["", "arguments:"]
            lines += [f"  {p.name:<14} {p.help}" + ("" if p.required else " (optional)") for p in self.positionals]
        if self.options or self.flags or self.allows_as:
            lines += ["", "options:"]
            for o in self.options:
                default = f" (default: {o.default})" if o.default is not None else ""
                required = " (required)" if o.required else ""
                lines.append(f"  {o.name + '=':<14} {o.help}{default}{required}")
            lines += [f"  {f:<14} {h}" for f, h in self.flags]
            if self.allows_as:
                lines.append(f"  {'as NAME':<14} bind the result to this Python variable")
        if self.establishes:
            lines += ["", "sets placeholders: " + ", ".join("{" + e + "}" for e in self.establishes)]
        if self.notes:
            lines += ["", self.notes]
        if self.example:
            lines += ["", "example:", "  " + self.example]
        return "\n".join(lines)
