"""What a model-out directive is given, checked before darknet starts: images (a file, a folder, a glob, a list
as darknet reads it), the class names, the weights against the cfg, line endings each flavor can read, and
hank-ai's example tools.
"""
from __future__ import annotations

import glob as _glob
import os
import shutil
from pathlib import Path
from typing import Optional

from ..setup.binary import require_file, resolve_darknet
from ..errors import Problem, StepError
from ..data.formats import image_size  # our check that a file is an image before darknet sees it
from ..media import IMAGE_SUFFIXES
from ..safenames import Reach, check_argv_paths, unsafe_reason






def read_image_list(path: Path) -> list[tuple[Path, str]]:
    """The images a list file names, each with where it was named (``LIST line N``), read as darknet reads
    train.txt: one path a line (``\\n`` only; a trailing ``\\r`` dropped), blank and ``#`` lines skipped, relative
    paths taken from the list's folder. A line that is not UTF-8 or holds a control character is an error
    naming the list and the line (darknet would read it as another path)."""
    found: list[tuple[Path, str]] = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        where = f"{path} line {number}"
        try:
            line = raw.decode("utf-8").removesuffix("\r").strip(" \t")
        except UnicodeDecodeError as exc:
            raise StepError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})",
                            fix="save the list as UTF-8, one image path a line") from None
        if not line or line.startswith("#"):
            continue
        reason = unsafe_reason(line, Reach.ARGV)
        if reason is not None:
            raise StepError(f"{where}: {reason}", fix="one image path a line, with no control characters",
                            problems=[Problem("bad-image", f"unreadable list line: {line!r}", file=str(path),
                                              line=number)])
        item = Path(line).expanduser()
        found.append((item if item.is_absolute() else path.parent / item, where))
    if not found:
        raise StepError(f"the list file {path} names no images", fix="write one image path per line")
    return found


def _source_files(path: Path, text: str) -> list[tuple[Path, Optional[str]]]:
    """The files of an image source (folder, list, one file or glob), each with where a list named it."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise StepError(f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)",
                            fix="give a folder of images, one image, a list file or a glob")
        return [(p, None) for p in found]
    if path.is_file() and path.suffix.lower() == ".txt":
        return list(read_image_list(path))
    if path.is_file():
        return [(path, None)]
    if any(ch in text for ch in "*?["):
        found = sorted(Path(p) for p in _glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise StepError(f"the pattern {text} matches no file", fix="check the glob (e.g. images/*.jpg)")
        return [(p, None) for p in found]
    raise StepError(f"the image source {path} does not exist",
                    fix="give an image, a folder of images, a list file (.txt) or a glob",
                    problems=[Problem("missing-file", f"image source not found: {path}", file=str(path))])


def resolve_images(source: Path | str, *, base: Optional[Path] = None) -> list[Path]:
    """The images of SOURCE: one image, a folder (its images, sorted), a list file (one path a line, relative ones
    to the list's folder, as darknet's train.txt) or a glob. Every one is checked to be an image; an error about
    a list's entry names the list and the line."""
    text = str(source)
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    images = []
    for item, where in _source_files(path, text):
        at = f"{where}: " if where else ""
        if not item.is_file():
            raise StepError(f"{at}the image {item} does not exist", fix="fix the path (in the list file)",
                            problems=[Problem("missing-file", f"image not found: {item}", file=str(item))])
        if image_size(item) is None:
            raise StepError(f"{at}{item} is not an image darknet can read (no JPEG/PNG/BMP/GIF/PNM header)",
                            fix="remove it from the source, or convert it to JPEG or PNG",
                            problems=[Problem("bad-image", f"not an image: {item}", file=str(item))])
        images.append(item.resolve())
    return images


def unique_path(path: Path) -> Path:
    """`path`, or `path` with _1, _2, ... before the suffix: an earlier result is never overwritten."""
    if not path.exists():
        return path
    for n in range(1, 100000):
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise StepError(f"too many results named {path.name} in {path.parent}", fix="give another out= folder")


def names_from_data(data: Path) -> list[str]:
    """Class names from obj.data's ``names =`` file (relative to the working folder, as darknet reads it)."""
    for line in data.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "names" and value.strip():
            names = Path(value.strip()).expanduser()
            if not names.is_absolute():
                names = data.parent / names
            if names.is_file():
                return [n.strip() for n in names.read_text(errors="replace").splitlines() if n.strip()]
    return []


def class_names_file(data: Path) -> Optional[Path]:
    for line in data.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "names" and value.strip():
            return Path(value.strip()).expanduser()
    return None


def hank_tool(darknet: Path, name: str) -> Optional[Path]:
    """hank-ai's example tool `name` beside its CLI: a build tree (build/src-cli/darknet ->
    build/src-examples/NAME, build/src-onnx/NAME) or an installed prefix (same bin folder, or on PATH)."""
    darknet = Path(darknet)
    for candidate in (darknet.parent / name, darknet.parent.parent / "src-examples" / name,
                      darknet.parent.parent / "src-onnx" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def check_weights_file(cfg: Path, weights: Path) -> None:
    """The weights checked against the cfg as training does: a truncated or mismatched file is an error here."""
    from ..data.cfg_weights import check_weights

    problem = check_weights(cfg.read_text(errors="replace"), weights, cfg_file=str(cfg))
    if problem is not None and problem.severity == "error":
        raise StepError(f"the weights {weights} do not fit {cfg.name}: {problem.message}", fix=problem.fix,
                        problems=[problem])


def check_line_endings(flavor: Optional[str], **files: Path) -> None:
    """A StepError for a file this flavor cannot read for its line endings (pjreddie keeps a CRLF's \\r: ``[net]\\r``
    is no section, every value ends in it), naming the file, the line and the fix; other flavors pass."""
    from ..data.textfiles import text_file_problems

    for what, path in files.items():
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        errors = [p for p in text_file_problems(head, str(path), f"the {what}", flavor or "alexeyab")
                  if p.severity == "error"]
        if errors:
            raise StepError(f"{path} cannot be read by this darknet: {errors[0].message}", fix=errors[0].fix,
                            problems=errors)


def model_files(darknet: Path | str, data: Path, cfg: Path, weights: Path) -> tuple[Path, Path, Path, Path]:
    """The binary and the model's files, each checked to exist and to be a path darknet may get on its argv."""
    darknet_path = resolve_darknet(darknet)
    data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
    weights_path = require_file(Path(weights), "weights")
    check_argv_paths(data=data_path, cfg=cfg_path, weights=weights_path)
    return darknet_path, data_path, cfg_path, weights_path
