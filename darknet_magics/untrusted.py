"""Values read from files a user brought (annotations, names, obj.data, cfg): checked before we trust them.

An annotation file is data from anywhere: a tool's bug, a hand edit, or a file made to break us. Every reader
takes its numbers, names, paths and text through these checks, which raise `BadInput` (a `DarknetMagicsError`)
naming the file and the line (or the json path, ``annotations[3].bbox``) and the fix. What they refuse:

- numbers: missing, not numbers (``"12px"``, a list), booleans, nan and infinities (``1e999`` reads as inf),
  sizes that are negative or over `MAX_PX`, coordinates further than `MAX_PX` from the image;
- names: empty, with a line break or another control character (a newline in a class name shifts every later
  class of the .names file darknet reads), longer than `MAX_NAME`;
- paths: ones that leave the dataset's folder (``../../x.png``, an absolute path elsewhere, a link pointing out);
- text: bytes that are not UTF-8, json that is broken, nested too deep, or holds NaN/Infinity, broken XML.

Pure apart from reading the files they are given.
"""
from __future__ import annotations

import errno
import json
import math
import os
import unicodedata
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from .errors import DarknetMagicsError

__all__ = ["MAX_PX", "MAX_NAME", "BadInput", "number", "pixel", "claimed_size", "class_name", "parse_names",
           "Confined", "inside", "is_inside", "decode", "read_text", "load_json", "get", "parse_xml", "writing"]

#: No camera or scanner image is wider or higher (a 100 MP panorama is ~12,000 px): a size or coordinate past it
#: is a broken or hostile annotation, and darknet's int arithmetic on it would overflow.
MAX_PX = 100_000
#: Longer class names are not names (a whole file pasted into a label).
MAX_NAME = 200


class BadInput(DarknetMagicsError):
    """A value or file we refuse to read; the message starts with ``FILE:LINE`` (or ``FILE json.path``).

    `detail` is the message without the place, `line` the line number when the place has one (a `Problem` built
    from the error takes them apart).
    """

    def __init__(self, where: str, message: str, fix: str, line: Optional[int] = None) -> None:
        super().__init__(f"{where}: {message}" if where else message, fix=fix)
        self.where = where
        self.detail = message
        self.line = line


_NUMBER_FIX = "write a plain number (e.g. 12.5); re-export the annotations from the labelling tool"


def number(value: Any, where: str, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    """`value` (a number or its text) as a finite float in [low, high], else `BadInput` naming `what`."""
    if value is None:
        raise BadInput(where, f"{what} is missing", _NUMBER_FIX)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadInput(where, f"{what} is {_show(value)}, not a number", _NUMBER_FIX)
    try:
        if isinstance(value, str) and "_" in value:
            raise ValueError  # Python reads 1_000, no C program does
        result = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise BadInput(where, f"{what} is {_show(value)}, not a number", _NUMBER_FIX) from None
    if not math.isfinite(result):
        raise BadInput(where, f"{what} is {_show(value)}: not a finite number (darknet drops such a box "
                       "without a word, or its loss turns nan)",
                       "write the real value, or delete the box in the labelling tool")
    if not low <= result <= high:
        raise BadInput(where, f"{what} = {_show(value)} is outside {low:g}..{high:g}",
                       "fix the value in the labelling tool (is it in the right unit?)")
    return result


def pixel(value: Any, where: str, what: str) -> float:
    """A box coordinate in pixels: finite and within `MAX_PX` of the image (outside the image is clipped later)."""
    return number(value, where, what, -MAX_PX, 2 * MAX_PX)


def claimed_size(width: Any, height: Any, where: str) -> Optional[tuple[int, int]]:
    """The image size an annotation claims, or None when it says none (absent, empty or 0: the header decides)."""
    if width in (None, "") and height in (None, ""):
        return None
    w = number(0 if width in (None, "") else width, where, "width", 0, MAX_PX)
    h = number(0 if height in (None, "") else height, where, "height", 0, MAX_PX)
    return int(w), int(h)


def class_name(value: Any, where: str) -> str:
    """A class name, stripped: a non-empty single line without control characters, at most `MAX_NAME` long."""
    if value is None:
        raise BadInput(where, "has no class name", "give every box a class name in the labelling tool")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(where, f"the class name is {_show(value)}, not text", "give every box a class name")
    name = str(value).strip()
    if not name:
        raise BadInput(where, "the class name is empty", "give every box a class name in the labelling tool")
    # Cc: control characters (\n, \r, \t, \x0c...), Zl/Zp: the line/paragraph separators Python's splitlines cuts
    # at, Cs: a lone surrogate (from a Python variable), which cannot be written as UTF-8.
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise BadInput(where, f"the class name {name[:40]!r} holds the control character {bad!r}: in a .names file "
                       "a line break would shift every later class", "rename the class (one line, printable)")
    if len(name) > MAX_NAME:
        raise BadInput(where, f"the class name {name[:40]!r}... is {len(name):,} characters long",
                       f"use a name under {MAX_NAME} characters")
    return name


def parse_names(text: str, file: str) -> list[str]:
    """Class names from a .names file's text, one per line as darknet splits them (at \\n only; a trailing \\r is
    dropped); blank lines at the end are ignored, a blank line before a name is refused (darknet would count it)."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    names = []
    for i, line in enumerate(lines, 1):
        try:
            names.append(class_name(line.rstrip("\r"), ""))
        except BadInput as err:
            raise BadInput(f"{file}:{i}", err.detail, err.fix or "", line=i) from None
    return names


class Confined:
    """The paths of one dataset folder: `check` refuses a path that leaves it (``..``, an absolute path elsewhere,
    a link pointing out). Folders' real paths are cached, so 100,000 images cost one lstat each."""

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)
        self.real_root = os.path.realpath(root)
        self._real_dirs: dict[str, str] = {}

    def contains(self, path: Union[str, Path]) -> bool:
        """Whether `path`, links followed, is the root or under it."""
        folder, name = os.path.split(os.path.abspath(path))
        real_folder = self._real_dirs.get(folder)
        if real_folder is None:
            real_folder = self._real_dirs[folder] = os.path.realpath(folder)
        real = os.path.realpath(path) if os.path.islink(path) else os.path.join(real_folder, name)
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def check(self, path: Union[str, Path], where: str = "", what: str = "image") -> Union[str, Path]:
        """`path` itself when `contains` it, else `BadInput` naming `where` (the annotation that named it; the
        path itself when empty)."""
        text = os.fspath(path)
        if "\0" in text:
            raise BadInput(where or text[-60:], f"the {what} name {text[-60:]!r} has a NUL byte",
                           "re-export the annotations")
        if not self.contains(text):
            real = os.path.realpath(text)
            raise BadInput(where or text, f"the {what} {text} is outside the dataset folder {self.root}"
                           + (f" (it leads to {real})" if real != os.path.abspath(text) else ""),
                           f"keep the {what}s inside {self.root} and name them relative to it")
        return path


def inside(path: Union[str, Path], root: Union[str, Path], where: str, what: str = "image") -> Path:
    """`path` itself when it (and any link it is) stays inside `root`, else `BadInput` (see `Confined`)."""
    return Path(Confined(root).check(path, where, what))


def is_inside(path: Union[str, Path], root: Union[str, Path]) -> bool:
    """Whether `path`, links followed, is `root` or under it."""
    return Confined(root).contains(path)


def decode(data: bytes, where: str) -> str:
    """UTF-8 text (a leading BOM dropped), else `BadInput` naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise BadInput(f"{where}:{line}", f"not UTF-8 text (byte 0x{data[err.start]:02x})",
                       "save the file as UTF-8 (the labelling tool's export, or iconv -f latin1 -t utf-8)",
                       line=line) from None


def read_text(path: Union[str, Path]) -> str:
    """A text file we read (names, yaml, csv, labels), decoded with `decode`."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise BadInput(str(path), f"cannot be read: {err.strerror}", "check the file exists and is readable") from None
    return decode(data, str(path))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number json allows")


def load_json(path: Union[str, Path]) -> Any:
    """A json file, refusing NaN/Infinity, broken text and nesting too deep for Python (no RecursionError)."""
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}:{err.lineno}", f"not valid json: {err.msg} (column {err.colno})",
                       "re-export the file from the labelling tool", line=err.lineno) from None
    except ValueError as err:  # NaN/Infinity, an integer of thousands of digits
        raise BadInput(str(path), f"not valid json: {err}", "re-export the file from the labelling tool") from None
    except RecursionError:
        raise BadInput(str(path), "json nested deeper than any annotation file (too deep to read)",
                       "re-export the file from the labelling tool") from None


def get(obj: Any, key: str, where: str, kind: type = object, default: Any = ...) -> Any:
    """``obj[key]`` of a json object at json path `where`, checked to be a `kind`; `default` when absent (or
    `BadInput` when no default is given)."""
    if not isinstance(obj, dict):
        raise BadInput(where, f"is {_show(obj)}, not a json object", "re-export the file from the labelling tool")
    if key not in obj or obj[key] is None:
        if default is not ...:
            return default
        raise BadInput(where, f"has no {key!r}", "re-export the file from the labelling tool")
    value = obj[key]
    if kind is not object and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise BadInput(f"{where}.{key}", f"is {_show(value)}, not a {_KIND_NAMES.get(kind, kind.__name__)}",
                       "re-export the file from the labelling tool")
    return value


_KIND_NAMES = {list: "json list", dict: "json object", str: "string", int: "whole number"}


def parse_xml(path: Union[str, Path], what: str) -> ET.Element:
    """The root of an XML file, else `BadInput` with the line of the first error."""
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        line = err.position[0] if getattr(err, "position", None) else 0
        raise BadInput(f"{path}:{line}" if line else str(path), f"not a readable {what}: {err}",
                       "re-save it from the labelling tool (the file is cut short or not XML)", line=line) from None
    except OSError as err:
        raise BadInput(str(path), f"cannot be read: {err.strerror}", "check the file exists and is readable") from None


@contextmanager
def writing(what: str, path: Union[str, Path]) -> Iterator[None]:
    """Turn a full disk, a read-only disk or a permission error while writing `what` into a clear error.

    The writes inside use fileio's atomic helpers, so what failed left no partial or temporary file behind.
    """
    try:
        yield
    except DarknetMagicsError:
        raise
    except OSError as err:
        at = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DarknetMagicsError(f"the disk is full: {what} {path} was not written ({err.strerror}{at})",
                                     fix="free space on that disk (df -h), or write to another folder; nothing "
                                         "half-written was left") from None
        if err.errno == errno.EROFS:
            raise DarknetMagicsError(f"{what} {path} cannot be written: {err.strerror}{at}",
                                     fix="write to a writable folder (Drive: mount it again with `drive`); nothing "
                                         "half-written was left") from None
        if err.errno in (errno.EACCES, errno.EPERM):  # a file read on the way (a dataset's) may be the one
            raise DarknetMagicsError(f"{what} {path} was not written: {err.strerror}{at}",
                                     fix="check the permissions of that file or folder; nothing half-written was "
                                         "left") from None
        raise DarknetMagicsError(f"{what} {path} was not written: {err.strerror or err}{at}",
                                 fix="check the folder and the disk, then run the line again") from None


def _show(value: Any) -> str:
    """A short rendering of a value for a message (a 1 MB string is not echoed)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
