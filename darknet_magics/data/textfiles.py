"""The text files darknet reads (obj.data, a cfg, an image list): BOM, line endings and encoding (pure but for
reading the file).

darknet reads these files with its own fgetl, byte by byte, so what a text editor hides (a BOM, a CRLF's \\r,
broken UTF-8) ends up in a key, a section name or a path; `%yolo check` and the inputs' checks report it here.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import Problem
from ..untrusted import BadInput, decode

__all__ = ["read_checked_text", "read_head", "text_file_problems"]


def text_file_problems(head: bytes, file: str, what: str, flavor: str = "alexeyab") -> list[Problem]:
    """BOM and line-ending findings for the first bytes of a text file darknet reads (pure).

    darknet reads these files with its own fgetl: pjreddie's keeps a CRLF's \\r (a path ``x.jpg\\r`` cannot be
    opened, ``[net]\\r`` is no section); AlexeyAB/hank-ai drop it. A CR-only file is one line for every flavor. A
    BOM becomes part of the first key, section or path.
    """
    problems: list[Problem] = []
    if head.startswith(b"\xef\xbb\xbf"):
        problems.append(Problem("bom", f"{what} starts with a UTF-8 byte order mark: darknet reads it as part of the "
                                "first line", fix=f"save it without BOM (sed -i '1s/^\\xEF\\xBB\\xBF//' {file})",
                                file=file, line=1))
    crlf = head.count(b"\r\n")
    cr = head.count(b"\r") - crlf
    if cr > 0 and head.count(b"\n") == crlf:
        problems.append(Problem("line-endings", f"{what} has old Mac (CR-only) line endings: darknet reads the whole "
                                "file as one line", fix=f"convert them to \\n (tr '\\r' '\\n' < {file} > fixed && mv "
                                f"fixed {file})", file=file))
    elif crlf:
        first = head[: head.index(b"\r\n")].count(b"\n") + 1
        pj = flavor == "pjreddie"
        problems.append(Problem("line-endings", f"{what} has Windows (CRLF) line endings: "
                                + ("this darknet keeps the \\r in every line (paths and values end in it)" if pj else
                                   "AlexeyAB/hank-ai drop the \\r, pjreddie's darknet keeps it in every line"),
                                fix=f"convert to \\n line endings (sed -i 's/\\r$//' {file})",
                                severity="error" if pj else "warning", file=file, line=first))
    return problems


def read_head(path: Path, n: int = 1 << 16) -> bytes:
    """The first `n` bytes of a file, for `text_file_problems`; empty when it cannot be read (whoever reads the
    whole file reports that)."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def read_checked_text(path: Path, what: str, problems: list[Problem]) -> str:
    """A text file darknet reads (obj.data, a cfg): broken UTF-8 is a ``bad-encoding`` error (darknet would read
    the bytes as they are: a path or key with them is not the one shown), the text read on with replacements."""
    try:
        data = path.read_bytes()
    except OSError as err:
        problems.append(Problem("missing-file", f"{what} {path} cannot be read: {err.strerror}",
                                fix="check the file's permissions", file=str(path)))
        return ""
    try:
        return decode(data, str(path))
    except BadInput as err:
        problems.append(Problem("bad-encoding", f"{what}: {err.detail}", fix=err.fix or "", file=str(path),
                                line=err.line))
        return data.decode("utf-8", "replace")
