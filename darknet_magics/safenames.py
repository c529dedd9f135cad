"""One rule for every path and word we hand to darknet: nothing in it can be run, split or misread.

Darknet builds shell commands from file names (docs/security.md lists each call with its file and line):
pjreddie's ``load_image_cv`` runs ``system("echo PATH >> bad.list")`` for an image it cannot load, and AlexeyAB's
``fill_truth_detection`` / ``calc_anchors`` run ``system("echo LABELPATH ... >> bad_label.list")`` for a bad label,
the label path being the image path with its folder and extension swapped. Both put the name in the command
unquoted (or in double quotes), so ``$(...)``, backquotes, ``;``, ``|``, ``&``, ``>`` in an image's path run or
redirect. The same paths are typed at ``Enter Image Path:`` through a pty, where a newline ends the line and
control characters (^C, ^U, ^D, DEL) are the terminal's own keys. Files that darknet only opens (obj.data, cfg,
weights, lists) never reach a shell, so for them control characters and a leading ``-`` are what matter.

The rule is pure (`unsafe_reason`); `check_darknet_path` refuses a path with the file and the fix, and
`safe_link` gives a path that breaks it a safe name (a symlink in a folder of ours) where we write the list or
type the prompt ourselves, so results can still be reported under the user's real name.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from enum import Enum
from pathlib import Path
from typing import Optional, Sequence

from .errors import DarknetMagicsError

# What a POSIX sh gives meaning to in an unquoted or double-quoted word (dash is /bin/sh on Debian and Colab):
# substitution ($ `), command separators and pipes (; & |), redirection (< >), subshells ( ), quoting (' " \),
# globs (* ? [ ]), braces { }, tilde ~ and comments #. Space is no metacharacter here: in `echo PATH >> bad.list`
# it only splits echo's arguments, and our lists and prompts carry it whole.
SHELL_METACHARACTERS = frozenset("$`;&|<>()'\"\\*?[]{}~#")

# One search per path (a 20,000-image list is checked in milliseconds): Unicode's Cc category (C0, DEL, C1) is
# exactly U+0000-U+001F and U+007F-U+009F; U+2028/U+2029 are the line and paragraph separators Python's
# splitlines (and editors) break lines at; lone surrogates are the bytes of a name that is not UTF-8 (os.fsdecode).
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
_UNSAFE_ARGV = re.compile(f"[{_CONTROL}]")
_UNSAFE_SHELL = re.compile(f"[{_CONTROL}{re.escape(''.join(sorted(SHELL_METACHARACTERS)))}]")


class Reach(Enum):
    """Where darknet takes a path: into a shell command (image paths) or only to open it (argv files)."""

    SHELL = "shell"
    ARGV = "argv"


def _char_name(ch: str) -> str:
    code = ord(ch)
    if code < 32:
        return f"control character ^{chr(code + 64)} (U+{code:04X})"
    if 0xD800 <= code <= 0xDFFF:
        return "a byte that is not UTF-8"
    return f"{unicodedata.name(ch, 'control character')} (U+{code:04X})"


def unsafe_reason(text: str, reach: Reach = Reach.SHELL) -> Optional[str]:
    """Why `text` may not reach darknet as a path, or None when it may.

    Args:
        text: the path as darknet would get it.
        reach: SHELL for image paths (a darknet flavor may echo them, or their label path, through ``system()``),
            ARGV for files darknet only opens.

    Returns:
        A short reason naming the first offending character, or None.
    """
    if not text:
        return "the path is empty"
    if text.startswith("-"):
        return "it starts with '-' (darknet would read it as a flag)"
    m = (_UNSAFE_SHELL if reach is Reach.SHELL else _UNSAFE_ARGV).search(text)
    if m is None:
        return None
    ch = m.group()
    if 0xD800 <= ord(ch) <= 0xDFFF:
        return "its name is not valid UTF-8"
    if ch in SHELL_METACHARACTERS:
        return f"it holds {ch!r}, which darknet's own `echo ... >> bad.list` shell command would run or redirect"
    return f"it holds the {_char_name(ch)}, which would split darknet's line or be a terminal key"


def check_darknet_path(path: Path | str, *, what: str, reach: Reach = Reach.SHELL,
                       source: Optional[str] = None) -> Path:
    """`path`, or a DarknetMagicsError naming it (and `source`, e.g. ``list.txt line 3``) with the fix.

    Args:
        path: the path darknet would get.
        what: what it is (image, cfg, weights, obj.data, list), for the message.
        reach: see `unsafe_reason`.
        source: where the path came from, when it was read from a file.
    """
    reason = unsafe_reason(str(path), reach)
    if reason is None:
        return Path(path)
    where = f"{source}: " if source else ""
    allowed = ("letters, digits, spaces and . _ - + = , @ % ^ !" if reach is Reach.SHELL
               else "no control characters, not starting with '-'")
    raise DarknetMagicsError(f"{where}the {what} path {str(path)!r} cannot be given to darknet: {reason}",
                             fix=f"rename it ({allowed}); see docs/security.md")


def check_argv_paths(**paths: Optional[Path]) -> None:
    """`check_darknet_path` with ARGV reach for each file darknet only opens (``data=..., cfg=...``; None skipped)."""
    for what, path in paths.items():
        if path is not None:
            check_darknet_path(path, what=what, reach=Reach.ARGV)


def link_name(path: Path, index: int) -> str:
    """The safe name `safe_link` gives `path`: its position and a hash of the full path, then its suffix."""
    digest = hashlib.sha1(os.fsencode(str(path))).hexdigest()[:8]
    suffix = path.suffix.lower()
    if unsafe_reason(suffix) is not None or len(suffix) > 8:
        suffix = ""
    return f"{index:05d}-{digest}{suffix}"


def safe_link(path: Path, folder: Path, index: int, *, with_label: bool = False) -> Path:
    """A symlink to `path` in `folder` under a safe name (`link_name`); made again when it points elsewhere.

    Args:
        path: the file whose name breaks the rule (absolute, or it is made so).
        folder: a folder of ours whose own path passes the rule (made if missing).
        index: its position (names stay unique and sorted as the originals were given).
        with_label: also link the label beside it (``NAME.txt``), where darknet looks for it from the link.

    Returns:
        The link's path.
    """
    folder_text = str(folder)
    if unsafe_reason(folder_text) is not None:
        raise DarknetMagicsError(f"the link folder {folder_text!r} itself has an unsafe name",
                                 fix="give an out= or workspace folder whose path has no shell characters")
    folder.mkdir(parents=True, exist_ok=True)
    target = Path(os.path.abspath(path))
    link = folder / link_name(target, index)
    pairs = [(target, link)]
    if with_label:
        label = target.with_suffix(".txt")
        if label.is_file():
            pairs.append((label, link.with_suffix(".txt")))
    for source, name in pairs:
        if os.path.islink(name) and os.readlink(name) == str(source):
            continue
        tmp = name.with_name(f".{name.name}.tmp{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(source, tmp)
        os.replace(tmp, name)  # atomic: a list never names a half-made link
    return link


def link_unsafe(paths: Sequence[str], folder: Path, *, with_label: bool = False) -> list[str]:
    """`paths` with each one that breaks the rule (SHELL reach) replaced by its `safe_link` in `folder`; the
    others unchanged, in the same order. For the lists we write (train.txt, valid.txt): darknet reads the link."""
    return [str(safe_link(Path(p), folder, k, with_label=with_label)) if unsafe_reason(p) else p
            for k, p in enumerate(paths)]


def safe_file_name(name: str, *, what: str) -> str:
    """`name` as one file name inside a folder of ours, or a DarknetMagicsError: no '/', not '.' or '..', no
    control characters, no shell characters (a weights file name from a URL, a result's name)."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise DarknetMagicsError(f"the {what} name {name!r} is not a file name (it would leave its folder)",
                                 fix="give a URL or name that ends in the file's own name, e.g. .../yolov4.weights")
    reason = unsafe_reason(name)
    if reason is not None:
        raise DarknetMagicsError(f"the {what} name {name!r} cannot be used: {reason}",
                                 fix="rename it (letters, digits, . _ -); see docs/security.md")
    return name


# ----------------------------------------------------------------------------------------------------------------
# darknet's own flags (args=): the ones that write into the user's files are refused.

# Read from each flavor's argument parsing (docs/security.md): flag -> what it would write.
WRITING_FLAGS: dict[str, str] = {
    "-save_labels": "writes each image's predictions over its label file NAME.txt (the dataset's ground truth)",
    "-out": "writes darknet's result file (JSON, or pjreddie's picture) at a path of its choosing",
    "-prefix": "writes one picture per video frame under that path prefix",
    "-json_file_output": "writes a JSON file at the path given",
    "-out_filename": "writes the annotated video at the path given",
    "-chart": "writes the training chart at the path given",
    "-log": "writes darknet's messages into the file given (hank-ai)",
}
_WRITING_FIX = {
    "-save_labels": "leave it out: the detections are in yolo_result.detections "
                    "(e.g. yolo_result.detections.to_csv('predictions.csv'))",
    "-out": "leave it out: %yolo test writes the annotated images into out= and returns the detections frame",
    "-out_filename": "leave it out: %yolo video writes the annotated video into out=",
    "-chart": "leave it out: the run folder has chart.html and chart.png",
}


def _flag_key(word: str, flavor: Optional[str]) -> str:
    """The flag as darknet compares it: hank-ai lower-cases and drops every non-alphanumeric character."""
    if flavor == "hank-ai" or flavor is None:
        return "".join(ch for ch in word.lower() if ch.isalnum())
    return word


def check_darknet_words(flavor: Optional[str], words: Sequence[str]) -> list[str]:
    """Errors for ``args=`` words that may not reach darknet: control characters in any word, and the flags that
    write into files darknet chooses (`WRITING_FLAGS`), in each flavor's spelling (hank-ai's ``-SaveLabels`` too).

    Args:
        flavor: 'pjreddie', 'alexeyab', 'hank-ai' or None (unknown: every spelling is refused).
        words: the words after splitting ``args=``.
    """
    errors: list[str] = []
    writing = {_flag_key(f, flavor): f for f in WRITING_FLAGS}
    if flavor is None:
        writing.update({f: f for f in WRITING_FLAGS})
    for word in words:
        bad = _UNSAFE_ARGV.search(word)
        if bad is not None:
            errors.append(f"the darknet word {word!r} holds the {_char_name(bad.group())}")
            continue
        flag = writing.get(_flag_key(word, flavor)) if word.startswith("-") else None
        if flag is not None:
            fix = _WRITING_FIX.get(flag, "leave it out: results go into out= (see docs/security.md)")
            errors.append(f"{word} is refused: it {WRITING_FLAGS[flag]}; {fix}")
    return errors
