"""Which darknet: find the binary, guess its flavor, check the files it is given, and quote its last words.

Shared by training runs and by `%yolo test` / `%yolo map`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from ..errors import Problem, StepError
from ..output.logparse import strip_escapes
from ..safenames import check_darknet_words
from .flavor import Flavor

_flavor_cache: dict[tuple[str, float], Optional[Flavor]] = {}


def darknet_flavor(binary: Path | str) -> Optional[Flavor]:
    """`Flavor` ('pjreddie', 'alexeyab' or 'hank-ai': a str), guessed from the binary's bytes; None if it cannot be
    read.

    AlexeyAB's and hank-ai's binaries know ``-dont_show`` (hank-ai's CLI links ``libdarknet.so``, where the
    option lives); pjreddie's does not, and treats an unknown ``-dont_show`` after the cfg as the weights file.
    """
    path = Path(binary)
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    if key in _flavor_cache:
        return _flavor_cache[key]
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"libdarknet" in data or b"Hank.ai" in data or b"hank-ai" in data or b"darknet_cli" in data:
        flavor: Optional[Flavor] = Flavor.HANK_AI
    elif b"dont_show" in data:
        flavor = Flavor.ALEXEYAB
    else:
        flavor = Flavor.PJREDDIE
    _flavor_cache[key] = flavor
    return flavor


def resolve_darknet(darknet: Path | str) -> Path:
    """The binary as a path: a bare name is looked up on PATH; a missing one is a StepError with the fix."""
    text = str(darknet)
    if os.sep not in text:
        found = shutil.which(text)
        if found:
            return Path(found)
    path = Path(text).expanduser()
    if not path.exists():
        raise StepError(f"the darknet binary {text} does not exist",
                        fix="build it with `make` in a %%darknet cell, or give bin=PATH",
                        problems=[Problem("missing-file", f"darknet binary not found: {text}", file=text)])
    return path.resolve()


def require_file(path: Optional[Path], what: str) -> Optional[Path]:
    """`path` resolved, or a StepError naming the missing `what` (data, cfg, weights, image) and its fix."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        fix = {"data": "write it with `%yolo data`", "cfg": "write it with `%yolo cfg`",
               "weights": "fetch it with `weights NAME` in a %%darknet cell, or leave WEIGHTS out"}.get(what, "")
        raise StepError(f"the {what} file {path} does not exist", fix=fix,
                        problems=[Problem("missing-file", f"{what} file not found: {path}", fix=fix, file=str(path))])
    # abspath, not resolve(): darknet must get the space-free link `drive` made, not the spaced path behind it
    return Path(os.path.abspath(path))


def last_output(text: str, lines: int = 12) -> str:
    """The last `lines` non-empty lines of darknet's output, escapes removed, for an error's evidence."""
    clean = [ln.rstrip("\r") for ln in strip_escapes(text).replace("\r\n", "\n").split("\n")]
    clean = [ln.rsplit("\r", 1)[-1] for ln in clean if ln.strip()]
    return "last output:\n    " + "\n    ".join(clean[-lines:]) if clean else ""


# ----------------------------------------------------------------------------------------------------------------
# darknet's own flags, read from each flavor's sources (find_arg / find_int_arg / find_float_arg / find_char_arg
# calls in AlexeyAB's src/darknet.c + src/detector.c and pjreddie's examples/darknet.c + examples/detector.c;
# hank-ai's src-lib/darknet_args_and_parms.cpp). The value is what the flag takes: None (a switch), "int", "float"
# or "text". darknet itself ignores a flag it does not know (and a misspelt one silently does nothing), which is
# why we check them before it starts.
ALEXEYAB_FLAGS: dict[str, Optional[str]] = {
    **{f: None for f in ("-benchmark", "-benchmark_layers", "-clear", "-cuda_debug_sync", "-dont_show",
                         "-dontdraw_bbox", "-ext_output", "-letter_box", "-map", "-save_labels", "-show",
                         "-show_imgs")},
    **{f: "text" for f in ("-chart", "-gpus", "-http_post_host", "-json_file_output", "-out", "-out_filename",
                           "-prefix")},
    **{f: "float" for f in ("-hier", "-iou_thresh", "-thresh")},
    **{f: "int" for f in ("-avgframes", "-c", "-height", "-i", "-json_port", "-mAP_epochs", "-mjpeg_port",
                          "-num_of_clusters", "-points", "-s", "-time_limit_sec", "-width")},
}
PJREDDIE_FLAGS: dict[str, Optional[str]] = {
    "-clear": None, "-fullscreen": None, "-nogpu": None, "-gpus": "text", "-out": "text", "-prefix": "text",
    "-hier": "float", "-thresh": "float",
    **{f: "int" for f in ("-avg", "-c", "-class", "-fps", "-h", "-i", "-s", "-w")},
}
# hank-ai compares names lower-cased with every non-alphanumeric character removed (-dont_show == dontshow).
HANK_AI_FLAGS: dict[str, Optional[str]] = {
    **{f: None for f in ("color", "colour", "nocolor", "nocolour", "fuse", "dontfuse", "nofuse", "boxes", "noboxes",
                         "fp16", "fp32", "verbose", "showdetails", "trace", "dontshow", "noshow", "clear", "map",
                         "benchmark", "benchmarklayers", "letterbox", "random", "show", "heatmaps", "heatmap",
                         "showimgs", "extoutput", "savelabels")},
    **{f: "float" for f in ("thresh", "threshold", "nms", "nmsthresh", "iouthresh", "hier")},
    **{f: "int" for f in ("camera", "c", "saveweights", "avgframes", "points", "numofclusters", "width", "height",
                          "timelimitsec", "s")},
    **{f: "text" for f in ("httpposthost", "outfilename", "out", "prefix", "chart", "skipclasses", "log", "gpus")},
}
# Flags each of our commands sets itself: given again after `--` they would be passed twice.
OWN_FLAGS = {"train": ("-dont_show", "-map", "-gpus", "-clear"), "test": ("-thresh", "-dont_show", "-ext_output"),
             "map": ("-dont_show", "-iou_thresh", "-points"), "video": ("-dont_show", "-out_filename", "-thresh")}


def _hank_key(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def check_darknet_args(flavor: Optional[str], command: str, words: list[str]) -> list[str]:
    """Errors for darknet flags (the argv words after ``--``) that this flavor does not know; [] when all are fine.

    Args:
        flavor: 'alexeyab', 'hank-ai', 'pjreddie' or None (unknown: nothing can be checked, nothing is refused).
        command: our command (train, test, map, video): its own flags may not be given twice.
        words: the words, e.g. ``["-mAP_epochs", "2", "-points", "0"]``.

    Returns:
        One message per problem: the flag, what is wrong and near matches this flavor does know. Words that
        `safenames.check_darknet_words` refuses (e.g. ``-save_labels``) are refused whatever the flavor.
    """
    import difflib

    refused = check_darknet_words(flavor, words)  # control characters, flags that write the user's files
    if refused or flavor not in ("alexeyab", "pjreddie", "hank-ai"):
        return refused
    known = {"alexeyab": ALEXEYAB_FLAGS, "pjreddie": PJREDDIE_FLAGS, "hank-ai": HANK_AI_FLAGS}[flavor]
    label = {"alexeyab": "AlexeyAB's", "pjreddie": "pjreddie's", "hank-ai": "hank-ai's"}[flavor]
    own = {(_hank_key(f) if flavor == "hank-ai" else f) for f in OWN_FLAGS.get(command, ())}
    errors: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or len(word) < 2:
            errors.append(f"darknet flag expected, got {word!r} (flags start with '-', e.g. -points 0)")
            continue
        key = _hank_key(word) if flavor == "hank-ai" else word
        if key not in known:
            pool = list(known)
            near = difflib.get_close_matches(key, pool, n=3, cutoff=0.6)
            if flavor == "hank-ai":
                near = [f"-{n}" for n in near]
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            errors.append(f"{label} darknet has no flag {word}{hint}")
            if i < len(words) and not words[i].startswith("-"):
                i += 1  # its value, most likely: one error for the pair
            continue
        if key in own:
            errors.append(f"{word} is set by %yolo {command} itself: use its option instead of passing it after --")
        kind = known[key]
        if kind is None:
            continue
        if i >= len(words):
            errors.append(f"{word} takes a value ({kind}), e.g. {word} {'0.5' if kind == 'float' else '2'}")
            continue
        value = words[i]
        i += 1
        try:
            {"int": int, "float": float}.get(kind, str)(value)
        except ValueError:
            errors.append(f"{word} takes a {kind} value, not {value!r}")
    return errors
