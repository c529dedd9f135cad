"""Parsing: `%%darknet` cell text and `%yolo` lines -> validated `Step`s, against a `Grammar` of specs. Pure.

A line is ``NAME ARG... KEY=VALUE... [FLAG...] [as VAR]`` with shell-like quoting (``"My Drive"``), ``#`` comments
and ``{name}`` placeholders. Parsing checks everything it can before anything runs: unknown directives (with the
nearest known one), missing or extra arguments, unknown options (with the valid ones), values of the wrong type,
unterminated quotes and lone braces (with the column), placeholders nobody sets. Placeholders are *filled* later,
when the step runs (`Step.resolve`), because ``{drive}`` only has a value once the ``drive`` line has run.

The path of a line: `tokenize` -> `_split_as` (the ``as NAME`` tail) -> `_classify` (options, flags, positionals)
-> `_bind` (positionals to their names, required ones present) -> `_check_values` (types, the spec's own rule).
Jupysql's lesson (see STYLE.md): keep the syntax small. Everything is a word, a ``key=value`` or a flag.
"""
from __future__ import annotations

import difflib
import keyword
import re
from dataclasses import dataclass, field, replace
from typing import Any, Container, Iterable, Iterator, Mapping, Optional, Sequence

from ..errors import DirectiveError
from .placeholders import BUILTIN_PLACEHOLDERS, check_braces, expand, placeholders
from .specs import Spec, convert

__all__ = ["Token", "tokenize", "Step", "Plan", "CellError", "Grammar", "parse_line", "parse_cell", "parse_yolo"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ---------------------------------------------------------------------------------------------- grammar


@dataclass(frozen=True)
class Grammar:
    """The specs of both languages: ``darknet`` (cell lines) and ``yolo`` (subcommands), by name."""

    darknet: Mapping[str, Spec]
    yolo: Mapping[str, Spec]

    def specs(self, language: str) -> Mapping[str, Spec]:
        return self.darknet if language == "darknet" else self.yolo

    def setter_of(self, name: str) -> Optional[str]:
        """The directive whose run gives placeholder `name` a value (None when no directive does)."""
        return next((s.name for s in self.darknet.values() if name in s.establishes), None)

    def reserved(self) -> frozenset[str]:
        """Placeholder names the session owns: `set` may not redefine them."""
        names = {e for s in self.darknet.values() for e in s.establishes}
        return frozenset(names | set(BUILTIN_PLACEHOLDERS))

    def placeholder_fix(self, name: str, known: Iterable[str] = ()) -> str:
        setter = self.setter_of(name)
        if setter:
            return f"run a `{setter}` line before this one (it sets {{{name}}})"
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"did you mean {{{close[0]}}}? " if close else ""
        return hint + f"define it first with `set {name}=VALUE`; write {{{{ and }}}} for literal braces"


# ---------------------------------------------------------------------------------------------- plan objects


@dataclass(frozen=True)
class Step:
    """One validated line. Values are still raw text; `resolve()` fills placeholders and converts types."""

    spec: Spec
    lineno: int
    source: str
    args: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    as_name: Optional[str] = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def language(self) -> str:
        return self.spec.language

    def resolve(self, values: Mapping[str, Any], grammar: Optional[Grammar] = None) -> "Step":
        """Fill ``{placeholders}`` from `values` and convert option values to their types."""
        def fill(text: str) -> str:
            return expand(text, values, lineno=self.lineno, directive=self.name, source=self.source,
                          fix_for=(lambda n: grammar.placeholder_fix(n, values)) if grammar else None)

        args = {k: fill(v) for k, v in self.args.items()}
        options: dict[str, Any] = {}
        for key, raw in self.options.items():
            value = fill(raw) if isinstance(raw, str) else raw
            opt = self.spec.option(key)
            if opt is not None and isinstance(value, str):
                value = convert(opt, value, lineno=self.lineno, directive=self.name, source=self.source)
            options[key] = value
        return replace(self, args=args, options=options)

    def get(self, key: str, default: Any = None) -> Any:
        """An option's value, else its spec default (converted), else `default`."""
        if key in self.options:
            return self.options[key]
        opt = self.spec.option(key)
        if opt is not None and opt.default is not None:
            return convert(opt, str(opt.default)) if isinstance(opt.default, str) else opt.default
        return default

    def error(self, message: str, fix: str) -> DirectiveError:
        """A DirectiveError about this line (for a spec's `check` rule)."""
        return DirectiveError(message, lineno=self.lineno, directive=self.name, source=self.source, fix=fix)


@dataclass(frozen=True)
class Plan:
    """The steps of one cell, in order."""

    steps: tuple[Step, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)


class CellError(DirectiveError):
    """Several lines of one cell are wrong: all of them are reported at once, and nothing runs."""

    def __init__(self, errors: Sequence[DirectiveError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} lines have errors; nothing was run")

    def __str__(self) -> str:
        return self.message + "\n" + "\n".join(str(e) for e in self.errors)


# ---------------------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    text: str
    column: int
    key: Optional[str] = None  # set for KEY=VALUE tokens whose KEY= part was not quoted
    quoted: bool = False

    @property
    def bare(self) -> bool:
        """A plain unquoted word (a candidate flag or ``as``)."""
        return self.key is None and not self.quoted


def tokenize(line: str, *, lineno: int = 1) -> list[Token]:
    """Split a line like a POSIX shell would (quotes, backslashes, ``#`` comments), keeping columns.

    Only ``KEY=`` written outside quotes makes an option: ``"a=b"`` stays a plain word.
    """
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] == "#":
            break
        start = i
        buf: list[str] = []
        quoted = False
        key: Optional[str] = None
        while i < n and not line[i].isspace():
            ch = line[i]
            if ch in "'\"":
                quoted = True
                close = line.find(ch, i + 1) if ch == "'" else _find_dquote(line, i + 1)
                if close < 0:
                    raise DirectiveError(f"unterminated {ch} quote starting at column {i + 1}", lineno=lineno,
                                         source=line, column=i, fix=f"close the quote with a matching {ch}")
                chunk = line[i + 1:close]
                buf.append(re.sub(r'\\(["\\$`])', r"\1", chunk) if ch == '"' else chunk)
                i = close + 1
            elif ch == "\\" and i + 1 < n:
                buf.append(line[i + 1])
                quoted = True
                i += 2
            elif ch == "=" and key is None and not quoted and _IDENT.match("".join(buf)):
                key, buf = "".join(buf), []
                i += 1
            else:
                buf.append(ch)
                i += 1
        tokens.append(Token(text="".join(buf), column=start, key=key, quoted=quoted))
    return tokens


def _find_dquote(line: str, i: int) -> int:
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == '"':
            return i
        i += 1
    return -1


# ---------------------------------------------------------------------------------------------- parsing


class _Line:
    """One line being parsed: its spec, tokens and where errors point."""

    def __init__(self, spec: Spec, text: str, lineno: int) -> None:
        self.spec, self.text, self.lineno = spec, text, lineno

    def error(self, message: str, fix: str, token: Optional[Token] = None) -> DirectiveError:
        return DirectiveError(message, lineno=self.lineno, directive=self.spec.name, source=self.text,
                              column=token.column if token else None, fix=fix)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _head(tokens: list[Token], text: str, language: str, grammar: Grammar, lineno: int) -> Spec:
    """The spec the first word names, or an error that says where the word belongs or what is near it."""
    head = tokens[0]
    specs = grammar.specs(language)
    if head.bare and head.text in specs:
        return specs[head.text]
    word = _short(head.text if head.key is None else head.key, 40)
    other = grammar.yolo if language == "darknet" else grammar.darknet
    if word in other:
        fix = (f"`{word}` is a %yolo subcommand: write it on its own line as `%yolo {_short(text.strip(), 80)}`"
               if language == "darknet" else f"`{word}` is a %%darknet directive: put it in a %%darknet cell")
    else:
        close = difflib.get_close_matches(word, list(specs), n=1, cutoff=0.5)
        fix = (f"did you mean `{close[0]}`? " if close else "") + "known: " + ", ".join(specs)
    what = "directive" if language == "darknet" else "%yolo subcommand"
    raise DirectiveError(f"unknown {what} {word!r}", lineno=lineno, directive=word, source=text.strip(), fix=fix)


def _split_as(line: _Line, rest: list[Token]) -> tuple[list[Token], Optional[str]]:
    """The tokens before a trailing ``as NAME``, and NAME (checked: a Python identifier that is no keyword)."""
    if len(rest) >= 2 and rest[-2].bare and rest[-2].text == "as":
        name_tok = rest[-1]
        if not line.spec.allows_as:
            raise line.error("`as NAME` is not accepted here", f"remove `as {_short(name_tok.text)}`", rest[-2])
        if name_tok.key is not None or not _IDENT.match(name_tok.text) or keyword.iskeyword(name_tok.text):
            raise line.error(f"`as {_short(name_tok.text)}`: not a valid Python variable name",
                             "write e.g. `as run2`", name_tok)
        return rest[:-2], name_tok.text
    if rest and rest[-1].bare and rest[-1].text == "as" and line.spec.allows_as:
        raise line.error("`as` needs a variable name after it", "write e.g. `as run2`", rest[-1])
    return rest, None


def _classify(line: _Line, rest: list[Token]) -> tuple[list[Token], dict[str, str], set[str]]:
    """(positionals, options, flags) of the tokens; unknown and repeated options are errors."""
    spec = line.spec
    positionals: list[Token] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    for tok in rest:
        if tok.key is None:
            if tok.bare and tok.text in spec.flag_names:
                flags.add(tok.text)
            else:
                positionals.append(tok)
            continue
        opt = spec.option(tok.key)
        if opt is None and not spec.open_options:
            valid = [o.name for o in spec.options]
            close = difflib.get_close_matches(tok.key, valid, n=1, cutoff=0.5)
            fix = (f"did you mean {close[0]}=? " if close else "") + (
                "valid options: " + ", ".join(v + "=" for v in valid) if valid else f"`{spec.name}` takes no options")
            raise line.error(f"unknown option {_short(tok.key, 40)}=", fix, tok)
        key = opt.name if opt else tok.key
        if key in options:
            raise line.error(f"option {key}= given twice", f"keep one {key}=", tok)
        options[key] = tok.text
    return positionals, options, flags


def _bind(line: _Line, positionals: list[Token]) -> dict[str, str]:
    """Positional tokens by their spec names; an extra one, a missing required one or a flag typo is an error."""
    spec = line.spec
    if spec.positionals and spec.positionals[-1].many and len(positionals) > len(spec.positionals):
        k = len(spec.positionals) - 1  # the words of a many-word positional, one per line
        positionals = positionals[:k] + [Token("\n".join(t.text for t in positionals[k:]), positionals[k].column,
                                               quoted=True)]
    if len(positionals) > len(spec.positionals):
        extra = positionals[len(spec.positionals)]
        close = difflib.get_close_matches(extra.text, list(spec.flag_names), n=1, cutoff=0.6)
        hint = f"did you mean the flag `{close[0]}`? " if close else ""
        raise line.error(f"unexpected argument {_short(extra.text)!r}",
                         hint + f"`{spec.name}` takes: {spec.usage()}; quote paths with spaces", extra)
    for pos in spec.positionals[len(positionals):]:
        if pos.required:
            raise line.error(f"missing {pos.name} ({pos.help})", f"write: {spec.usage()}")
    for tok in positionals:
        # `mapp` would silently become a weights file: a bare word close to a flag, that is not a path, is a typo
        if tok.bare and not re.search(r"[./{]", tok.text):
            close = difflib.get_close_matches(tok.text, list(spec.flag_names), n=1, cutoff=0.75)
            if close:
                raise line.error(f"{_short(tok.text)!r} is not a flag", f"did you mean the flag `{close[0]}`? "
                                 f"(quote it, or write ./{_short(tok.text)}, if it really is a file)", tok)
    return {pos.name: tok.text for pos, tok in zip(spec.positionals, positionals)}


def _check_values(line: _Line, step: Step, tokens: list[Token], grammar: Grammar, known: Container[str]) -> None:
    """Braces, placeholders, option types and the spec's own rule, on everything that is known now."""
    for tok in tokens[1:]:
        column = check_braces(tok.text)
        if column is not None:
            raise line.error(f"a lone {tok.text[column]!r} in {_short(tok.text)!r}",
                             "placeholders are {name} (letters, digits, _); write {{ or }} for a literal brace", tok)
    for text in list(step.args.values()) + list(step.options.values()):
        for name in placeholders(text):
            if name not in known and name not in BUILTIN_PLACEHOLDERS:
                raise line.error(f"placeholder {{{name}}} is not set by any earlier line",
                                 grammar.placeholder_fix(name, _names(known)))
    if step.spec.name == "set":
        reserved = grammar.reserved()
        for key in step.options:
            if key in reserved:
                setter = grammar.setter_of(key)
                raise line.error(f"{{{key}}} is not a `set` name: the session owns it"
                                 + (f" (the `{setter}` line sets it)" if setter else ""),
                                 f"choose another name, e.g. set my_{key}=..." + (
                                     f", or run `{setter}`" if setter else ""))
    for key, raw in step.options.items():  # convert what has no placeholder now: a bad value stops the cell
        opt = step.spec.option(key)
        if opt is not None and not placeholders(raw):
            convert(opt, raw, lineno=line.lineno, directive=step.name, source=step.source)
    if step.spec.check is not None:
        step.spec.check(step)


def _names(known: Container[str]) -> list[str]:
    try:
        return list(known)  # type: ignore[call-overload]
    except TypeError:
        return []


def parse_line(text: str, grammar: Grammar, *, language: str, lineno: int = 1,
               known: Container[str] = ()) -> Optional[Step]:
    """Parse one line of `language` ("darknet" or "yolo"). Blank and comment lines give None."""
    tokens = tokenize(text, lineno=lineno)
    if not tokens:
        return None
    spec = _head(tokens, text, language, grammar, lineno)
    line = _Line(spec, text, lineno)
    rest, as_name = _split_as(line, tokens[1:])
    positionals, options, flags = _classify(line, rest)
    if spec.name == "set":
        bad = next((k for k in options if not _IDENT.match(k)), None)
        if bad is not None or not options:
            raise line.error("nothing to set" if bad is None else f"{bad!r} is not a valid placeholder name",
                             "write: set NAME=VALUE (NAME: letters, digits and _)")
    for opt in spec.options:
        if opt.required and opt.name not in options:
            raise line.error(f"missing {opt.name}= ({opt.help})", f"write: {spec.usage()}")
    step = Step(spec=spec, lineno=lineno, source=text.strip(), args=_bind(line, positionals), options=options,
                flags=frozenset(flags), as_name=as_name)
    _check_values(line, step, tokens, grammar, known)
    return step


def _language_of(line: str, grammar: Grammar) -> tuple[str, str]:
    """("yolo", rest) for a line that starts with ``%yolo``/``yolo`` and a subcommand, else ("darknet", line)."""
    for prefix in ("%yolo ", "yolo "):
        if line.startswith(prefix) and line[len(prefix):].split(" ", 1)[0] in grammar.yolo:
            return "yolo", line[len(prefix):]
    return "darknet", line


def parse_cell(text: str, grammar: Grammar, *, known: Iterable[str] = ()) -> Plan:
    """Parse a `%%darknet` cell. Lines starting with ``%yolo`` (or ``yolo``) are `%yolo` subcommands, so a script
    file for the CLI can hold both languages. Every line is checked; all errors are raised together."""
    names = set(known)
    steps: list[Step] = []
    errors: list[DirectiveError] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("%%darknet"):
            continue  # a CLI script may keep the cell's first line
        language, line = _language_of(stripped, grammar)
        try:
            step = parse_line(line, grammar, language=language, lineno=lineno, known=names)
        except DirectiveError as exc:
            errors.append(exc)
            continue
        if step is not None:
            steps.append(step)
            names.update(step.spec.establishes)
            if step.name == "set":
                names.update(step.options)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CellError(errors)
    return Plan(steps=tuple(steps), source=text)


def parse_yolo(text: str, grammar: Grammar, *, known: Iterable[str] = ()) -> Optional[Step]:
    """Parse the text after ``%yolo``. Empty text gives None (the caller shows the overview help)."""
    return parse_line(text, grammar, language="yolo", lineno=1, known=set(known))


def overview(grammar: Grammar, language: str) -> str:
    """Every directive (``"darknet"``) or subcommand (``"yolo"``) with its usage and summary."""
    lines = []
    for spec in grammar.specs(language).values():
        lines += [f"  {spec.usage()}", f"      {spec.summary}"]
    return "\n".join(lines)
