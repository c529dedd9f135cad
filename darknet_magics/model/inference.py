"""`%yolo test`, `%yolo map`, `%yolo video`: run darknet on images, a video or the validation list; parse its output.

Batch inference runs ONE darknet process for the whole set, in each flavor's own batch form:

* pjreddie and AlexeyAB: ``detector test DATA CFG WEIGHTS`` without an image reads paths at its
  ``Enter Image Path:`` prompt. We type the next path at each prompt (through the pty), so when the next prompt
  shows, the previous image's annotated picture is complete and is moved into ``out``. pjreddie gets
  ``-out PREFIX`` (it then saves there and opens no OpenCV window, which would abort it without a display);
  AlexeyAB gets ``-dont_show -ext_output`` (boxes in pixels) and writes ``predictions.jpg`` in its working folder.
* hank-ai v5: its example tool ``darknet_01_inference_images`` takes every image on one command line and writes
  ``STEM_output.jpg`` into its working folder; its CLI's ``detector test`` prints
  ``name<TAB>c=7.69%<TAB>x=11<TAB>y=26<TAB>w=26<TAB>h=24`` lines (and no ``Predicted in``).

Every image is checked before darknet starts (darknet predicts on a blank image, or exits, when a file is not an
image), and the weights are checked against the cfg as training does. The parsers are pure (text in, rows out)
and are tested on captured real output (tests/fixtures/detections).
"""
from __future__ import annotations

import base64
import glob as _glob
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..run import runner
from ..setup.binary import darknet_flavor, last_output, require_file, resolve_darknet
from ..output.judge import diagnose
from ..output.logparse import strip_escapes
from ..errors import Problem, StepError
from ..data.formats import image_size  # our check that a file is an image before darknet sees it
from ..report import Reporter
from ..train.training import RUN_JSON, weights_iteration
from ..safenames import Reach, check_argv_paths, check_darknet_path, safe_link, unsafe_reason

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm", ".jfif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")

# Columns of every detections frame, whatever the flavor (pjreddie prints no boxes: those are NaN).
COLUMNS = ["name", "confidence", "left", "top", "width", "height", "x_center", "y_center", "rel_width",
           "rel_height", "class_id", "image"]

_PROMPT = r"Enter Image Path:"
# pjreddie: "red_box: 35%"; AlexeyAB adds "\t(left_x:   10   top_y:   36   width:   31   height:   27)".
_DETECTION = re.compile(
    r"^(?P<name>[^\s:][^:\r\n]*?):\s*(?P<conf>\d+(?:\.\d+)?)%"
    r"(?:\s*\(left_x:\s*(?P<left>-?\d+)\s+top_y:\s*(?P<top>-?\d+)\s+width:\s*(?P<width>-?\d+)\s+"
    r"height:\s*(?P<height>-?\d+)\))?\s*$")
# hank-ai v5 CLI: "red_box\tc=10.515173%\tx=10\ty=36\tw=31\th=27"
_HANK_CLI = re.compile(r"^(?P<name>[^\t\r\n]+?)\tc=(?P<conf>-?\d+(?:\.\d+)?)%\tx=(?P<left>-?\d+)\ty=(?P<top>-?\d+)"
                       r"\tw=(?P<width>-?\d+)\th=(?P<height>-?\d+)\s*$")
# hank-ai's example tools: 'loading "/path/img.png"' ... "-> 1/9: #0 prob=0.494085 x=23 y=25 w=29 h=32 entries=1"
_HANK_LOADING = re.compile(r'^loading "(?P<path>.*)"\s*$')
_HANK_RESULT = re.compile(r"^-> \d+/\d+: #(?P<cls>\d+) prob=(?P<prob>[\d.eE+-]+) x=(?P<left>-?\d+) y=(?P<top>-?\d+)"
                          r" w=(?P<width>-?\d+) h=(?P<height>-?\d+)")


def _clean_lines(text: str) -> list[str]:
    return [raw.rsplit("\r", 1)[-1].rstrip() for raw in strip_escapes(text).replace("\r\n", "\n").split("\n")]


def _row(name: str, conf: float, left=None, top=None, width=None, height=None, image: Optional[str] = None,
         class_id: Optional[int] = None) -> dict:
    row = {"name": name, "confidence": conf, "image": image, "class_id": class_id}
    if left is not None:
        row.update(left=int(left), top=int(top), width=int(width), height=int(height))
    return row


def parse_detection_lines(text: str) -> list[dict]:
    """Detection rows of one ``detector test`` output, any flavor: pjreddie/AlexeyAB ``name: 99%`` lines after
    ``Predicted in`` and hank-ai v5's tab-separated ``name<TAB>c=..%<TAB>x=..`` lines (which need no marker)."""
    rows = []
    seen_prediction = False
    for line in _clean_lines(text):
        m = _HANK_CLI.match(line)
        if m:
            rows.append(_row(m["name"].strip(), float(m["conf"]) / 100.0, m["left"], m["top"], m["width"],
                             m["height"]))
            continue
        line = line.strip()
        if "Predicted in" in line:
            seen_prediction = True
            continue
        if seen_prediction:
            m = _DETECTION.match(line)
            if m:
                rows.append(_row(m["name"].strip(), float(m["conf"]) / 100.0, m["left"], m["top"], m["width"],
                                 m["height"]))
    return rows


def parse_detections(text: str):
    """Detections printed by ``detector test`` as a frame: ``name``, ``confidence`` and, where printed, boxes."""
    import pandas as pd

    rows = parse_detection_lines(text)
    columns = ["name", "confidence"] + (["left", "top", "width", "height"] if any("left" in r for r in rows) else [])
    return pd.DataFrame([{k: r.get(k) for k in columns} for r in rows], columns=columns)


def parse_prompt_batch(text: str, images: Sequence[str]) -> list[dict]:
    """Rows of a pjreddie/AlexeyAB stdin batch: the output between two ``Enter Image Path:`` prompts belongs to the
    path typed at the first of them (``images[k]`` after the (k+1)-th prompt)."""
    segments = re.split(_PROMPT, text)
    rows: list[dict] = []
    for k, segment in enumerate(segments[1:]):
        if k >= len(images):
            break
        for row in parse_detection_lines(segment):
            row["image"] = str(images[k])
            rows.append(row)
    return rows


def parse_hank_tool(text: str, names: Sequence[str] = ()) -> tuple[list[dict], list[str]]:
    """Rows of hank-ai's ``darknet_01_inference_images`` output, and the images it called invalid.

    Each image's block starts with ``loading "PATH"``; its results are ``-> i/N: #CLASS prob=P x= y= w= h=``.
    """
    rows: list[dict] = []
    invalid: list[str] = []
    current: Optional[str] = None
    for line in _clean_lines(text):
        line = line.strip()
        m = _HANK_LOADING.match(line)
        if m:
            current = m["path"]
            continue
        if line.startswith("...invalid image") and current is not None:
            invalid.append(current)
            continue
        m = _HANK_RESULT.match(line)
        if m and current is not None:
            cls = int(m["cls"])
            name = names[cls] if cls < len(names) else str(cls)
            rows.append(_row(name, float(m["prob"]), m["left"], m["top"], m["width"], m["height"], image=current,
                             class_id=cls))
    return rows, invalid


def inference_problems(text: str) -> list[Problem]:
    """What darknet's own words say went wrong in a test run: an image it could not load, missing label glyphs."""
    problems: list[Problem] = []
    for m in re.finditer(r'Cannot load image "?([^"\r\n]+?)"?\s*(?:\r?\n\s*STB Reason: ([^\r\n]*))?(?:\r?\n|$)',
                         text):
        path, reason = m.group(1), (m.group(2) or "").strip()
        if "data/labels/" in path:
            if not any(p.code == "missing-label-glyphs" for p in problems):
                problems.append(Problem(
                    "missing-label-glyphs", f"darknet cannot find its label glyphs ({path}) in its working folder",
                    fix="run darknet in its clone folder (it reads data/labels/*.png from there), or copy the "
                        "clone's data/labels folder into the working folder", severity="error", file=path))
        else:
            problems.append(Problem("bad-image", f"darknet cannot load the image {path}"
                                    + (f" (STB Reason: {reason})" if reason else ""),
                                    fix="give an image file (jpg, png, bmp, ...): this one is not one, or is damaged",
                                    file=path))
    return problems


# ----------------------------------------------------------------------------------------------------------------
# Images


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


def _unique(path: Path) -> Path:
    """`path`, or `path` with _1, _2, ... before the suffix: an earlier result is never overwritten."""
    if not path.exists():
        return path
    for n in range(1, 100000):
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise StepError(f"too many results named {path.name} in {path.parent}", fix="give another out= folder")


def _names_from_data(data: Path) -> list[str]:
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


def _names_file(data: Path) -> Optional[Path]:
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
    from ..data.cfg import check_weights

    problem = check_weights(cfg.read_text(errors="replace"), weights, cfg_file=str(cfg))
    if problem is not None and problem.severity == "error":
        raise StepError(f"the weights {weights} do not fit {cfg.name}: {problem.message}", fix=problem.fix,
                        problems=[problem])


def check_line_endings(flavor: Optional[str], **files: Path) -> None:
    """A StepError for a file this flavor cannot read for its line endings (pjreddie keeps a CRLF's \\r: ``[net]\\r``
    is no section, every value ends in it), naming the file, the line and the fix; other flavors pass."""
    from ..data.checks import text_file_problems

    for what, path in files.items():
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        errors = [p for p in text_file_problems(head, str(path), f"the {what}", flavor or "alexeyab")
                  if p.severity == "error"]
        if errors:
            raise StepError(f"{path} cannot be read by this darknet: {errors[0].message}", fix=errors[0].fix,
                            problems=errors)


def _frame(rows: list[dict], sizes: dict[str, tuple[int, int]]):
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    if len(df):
        wh = df["image"].map(lambda p: sizes.get(p, (float("nan"), float("nan"))))
        iw = wh.map(lambda t: t[0]).astype(float)
        ih = wh.map(lambda t: t[1]).astype(float)
        for col in ("left", "top", "width", "height"):
            df[col] = pd.to_numeric(df[col])
        df["x_center"] = (df["left"] + df["width"] / 2) / iw
        df["y_center"] = (df["top"] + df["height"] / 2) / ih
        df["rel_width"] = df["width"] / iw
        df["rel_height"] = df["height"] / ih
    return df


@dataclass
class DetectResult:
    """What `detect` produced: the annotated images (in `out`), one detections frame for all images, the output."""

    image_path: Optional[Path]
    detections: Any
    output: str
    returncode: Optional[int] = None
    signal: Optional[int] = None
    images: list[Path] = field(default_factory=list)
    annotated: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        n = len(self.detections)
        if len(self.images) > 1:
            return (f"{n} detection(s) on {len(self.images)} images in {self.seconds:.1f} s; annotated images in "
                    f"{self.annotated[0].parent if self.annotated else '(none)'}")
        names = ", ".join(f"{r.name} {r.confidence:.0%}" for r in self.detections.itertuples()) if n else ""
        return f"{n} detection(s)" + (f": {names}" if names else "") + (
            f"; image: {self.image_path}" if self.image_path else "")


@dataclass
class MapReport:
    """What `evaluate_map` produced: the ``maps`` and ``class_ap`` frames (as in training) and the output."""

    maps: Any
    class_ap: Any
    output: str

    @property
    def map50(self) -> Optional[float]:
        if self.maps is None or not len(self.maps):
            return None
        return float(self.maps["map50"].iloc[-1])

    def summary(self) -> str:
        if self.map50 is None:
            return "no mAP result"
        return f"mAP@0.50 = {100 * self.map50:.2f}% over {len(self.class_ap)} class(es)"


def _display_free_env(env: Optional[dict]) -> dict:
    """Our environment without a display: pjreddie's OpenCV window then fails at once instead of waiting."""
    env = dict(os.environ if env is None else env)
    for key in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(key, None)
    env["QT_QPA_PLATFORM"] = "xcb"  # 'offscreen' would open an invisible window and wait for a key forever
    return env


def _fail(what: str, output: str, result, flavor: Optional[str], argv: list[str]) -> StepError:
    problems = inference_problems(output) + diagnose(output, returncode=result.returncode, signal=result.signal,
                                                     flavor=flavor, command=argv)
    return StepError(f"{what} ({result.describe()})", fix=problems[0].fix if problems else None, problems=problems,
                     details=last_output(output))


def _model_files(darknet: Path | str, data: Path, cfg: Path, weights: Path) -> tuple[Path, Path, Path, Path]:
    """The binary and the model's files, each checked to exist and to be a path darknet may get on its argv."""
    darknet_path = resolve_darknet(darknet)
    data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
    weights_path = require_file(Path(weights), "weights")
    check_argv_paths(data=data_path, cfg=cfg_path, weights=weights_path)
    return darknet_path, data_path, cfg_path, weights_path


def _result_stem(path: Path) -> str:
    """The stem our annotated picture of `path` is named after: its own, each unsafe character made '_'."""
    stem = "".join("_" if unsafe_reason(ch) else ch for ch in path.stem)
    return stem if stem and not stem.startswith("-") else "_" + stem


def _link_folder(out: Path) -> Path:
    """A new folder of ours for the safe links of one run: in `out` when its path passes the rule, else in the
    system's temporary folder (two runs never share one)."""
    for parent in (out, Path(tempfile.gettempdir()), Path("/tmp")):
        if unsafe_reason(str(parent)) is None and parent.is_dir():
            return Path(tempfile.mkdtemp(prefix=".detect-links-", dir=parent))
    raise StepError(f"no folder with a safe path for the image links (out={out})",
                    fix="give out= a folder whose path has no shell characters")


def _safe_images(images: list[Path], out: Path) -> tuple[list[Path], Optional[Path]]:
    """The paths darknet gets for `images`: each one that breaks the name rule (`safenames.unsafe_reason`:
    a newline, a control character, ``$(...)``, ...) as a safe symlink in a run-local folder, the others as they
    are; and that folder (None when no link was needed), which the caller removes after the run."""
    if not any(unsafe_reason(str(p)) for p in images):
        return list(images), None
    folder = _link_folder(out)
    return [safe_link(p, folder, k) if unsafe_reason(str(p)) else p for k, p in enumerate(images)], folder


def detect(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, image: Path | str,
           thresh: Optional[float] = 0.25, cwd: Optional[Path] = None, out: Optional[Path] = None,
           reporter: Optional[Reporter] = None, flavor: Optional[str] = None, env: Optional[dict] = None,
           extra_args: Sequence[str] = (), gallery: int = 4) -> DetectResult:
    """Detect objects in SOURCE (`image`: one image, a folder, a list file or a glob) with ONE darknet process.

    Args:
        darknet, data, cfg, weights: the binary and its files.
        image: the source of images (see `resolve_images`).
        thresh: darknet's ``-thresh``.
        cwd: darknet's working folder (a clone, for its data/labels glyphs).
        out: where the annotated images go (default: `cwd`); names never overwrite an earlier result.
        extra_args: darknet's own flags, appended as argv words (checked by `binary.check_darknet_args`).
        gallery: how many annotated images to show.

    Returns:
        A `DetectResult`: `detections` has one row per box and an ``image`` column, boxes in pixels and relative.
    """
    from ..setup.binary import check_darknet_args

    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = _model_files(darknet, data, cfg, weights)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    out = Path(out).expanduser().resolve() if out else cwd
    check_argv_paths(out=out)  # darknet writes its pictures (pjreddie: -out) or video there
    flavor = flavor or darknet_flavor(darknet_path)
    thresh = 0.25 if thresh is None else float(thresh)
    images = resolve_images(image)
    errors = check_darknet_args(flavor, "test", list(extra_args))
    if errors:
        raise StepError("; ".join(errors), fix="see the flags this darknet knows in docs/directives/yolo-test.md")
    check_weights_file(cfg_path, weights_path)
    check_line_endings(flavor, cfg=cfg_path, data=data_path)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {str(p): image_size(p) for p in images}
    started = time.monotonic()
    if flavor == "hank-ai" and hank_tool(darknet_path, "darknet_01_inference_images"):
        result, output, rows, annotated = _detect_hank(darknet_path, data_path, cfg_path, weights_path, images,
                                                       thresh, out, reporter, env, extra_args)
    else:
        result, output, rows, annotated = _detect_prompt_linked(darknet_path, data_path, cfg_path, weights_path,
                                                                images, thresh, cwd, out, reporter, env, flavor,
                                                                extra_args)
    seconds = time.monotonic() - started
    problems = inference_problems(output)
    if problems and problems[0].code == "bad-image" or result.returncode not in (0, None) or result.signal:
        raise _fail("darknet detector test failed", output, result, flavor, [str(darknet_path), "detector", "test"])
    if len(annotated) < len(images):
        raise _fail(f"darknet stopped after {len(annotated)} of {len(images)} images", output, result, flavor,
                    [str(darknet_path), "detector", "test"])
    for p in problems:  # e.g. missing label glyphs: boxes are drawn without names
        reporter.warn(p.describe())
    detections = _frame(rows, sizes)
    reporter.progress(f"detect: {len(images)}/{len(images)} images in {seconds:.1f} s", final=True)
    for path in annotated[:gallery]:
        reporter.image(str(path))
    if len(annotated) > gallery:
        reporter.info(f"... and {len(annotated) - gallery} more annotated image(s) in {out}")
    reporter.dataframe(detections, title=f"{len(detections)} detection(s) on {len(images)} image(s) at thresh {thresh}")
    return DetectResult(image_path=annotated[0] if annotated else None, detections=detections, output=output,
                        returncode=result.returncode, signal=result.signal, images=images, annotated=annotated,
                        seconds=seconds)


def _detect_prompt_linked(darknet_path, data_path, cfg_path, weights_path, images, thresh, cwd, out, reporter,
                          env, flavor, extra_args):
    """`_detect_prompt` with each image that breaks the name rule typed as a safe link (`_safe_images`); the rows,
    the pictures' names and darknet's output name the user's own files, not the links."""
    fed, links = _safe_images(images, out)
    try:
        result, output, rows, annotated = _detect_prompt(darknet_path, data_path, cfg_path, weights_path, fed,
                                                         thresh, cwd, out, reporter, env, flavor, extra_args,
                                                         stems=[_result_stem(p) for p in images])
    finally:
        if links is not None:
            shutil.rmtree(links, ignore_errors=True)
    back = {str(f): str(p) for f, p in zip(fed, images)}
    for row in rows:
        row["image"] = back.get(row["image"], row["image"])
    for f, p in zip(fed, images):
        output = output.replace(str(f), str(p)) if f != p else output
    return result, output, rows, annotated


def _detect_prompt(darknet_path, data_path, cfg_path, weights_path, images, thresh, cwd, out, reporter, env,
                   flavor, extra_args, stems):
    """pjreddie / AlexeyAB: type each path at ``Enter Image Path:``; collect each annotated picture at the next
    (named after `stems`, the user's own names)."""
    for item in images:  # typed at a pty: no control character, nothing darknet's `echo` could run
        check_darknet_path(item, what="image")
        if len(str(item)) > 250:  # both read the path with fgets(input, 256, stdin)
            raise StepError(f"the image path {item} is longer than the 255 characters darknet reads",
                            fix="move the images to a shorter folder")
    scratch = Path(tempfile.mkdtemp(prefix=".detect-", dir=out))
    argv = [str(darknet_path), "detector", "test", str(data_path), str(cfg_path), str(weights_path),
            "-thresh", str(thresh)]
    if flavor == "pjreddie":
        produced_base = scratch / "current"
        argv += ["-out", str(produced_base)]  # saves there and opens no window (which aborts without a display)
    else:
        produced_base = cwd / "predictions"
        argv += ["-dont_show", "-ext_output"]
    argv += list(extra_args)
    annotated: list[Path] = []
    state = {"next": 0}

    def collect(index: int) -> None:
        for suffix in (".jpg", ".png"):
            produced = produced_base.with_name(produced_base.name + suffix)
            if produced.is_file():
                target = _unique(out / f"{stems[index]}_predictions{suffix}")
                shutil.move(str(produced), str(target))
                annotated.append(target)
                return

    def answer() -> Optional[str]:
        k = state["next"]
        if k > 0:
            collect(k - 1)
        reporter.progress(f"detect: {k}/{len(images)} images")
        state["next"] = k + 1
        return str(images[k]) if k < len(images) else None

    chunks: list[str] = []
    for suffix in (".jpg", ".png"):  # a stale predictions.jpg from an earlier run must not count as this one's
        stale = produced_base.with_name(produced_base.name + suffix)
        if stale.is_file() and flavor != "pjreddie":
            stale.unlink()
    try:
        result = runner.run(argv, cwd=cwd, log_path=None, on_text=chunks.append,
                            watchdog=runner.Watchdog(silence_s=300.0), env=_display_free_env(env),
                            prompts=((_PROMPT, answer),))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    output = "".join(chunks)
    return result, output, parse_prompt_batch(output, [str(p) for p in images]), annotated


def _detect_hank(darknet_path, data_path, cfg_path, weights_path, images, thresh, out, reporter, env, extra_args):
    """hank-ai: ``darknet_01_inference_images CFG NAMES WEIGHTS IMAGE...`` in a scratch folder.

    The tool resolves each path and writes ``STEM_output.jpg`` into its working folder; when two images share a
    stem (or a name starts with '-', which it would read as a flag, or breaks `safenames`' rule) they are copied
    in as 00000.png, 00001.jpg, ...
    """
    tool = hank_tool(darknet_path, "darknet_01_inference_images")
    names = _names_from_data(data_path)
    names_file = _names_file(data_path)
    scratch = Path(tempfile.mkdtemp(prefix=".detect-", dir=out))
    stems = [p.stem for p in images]
    if len(set(stems)) == len(stems) and not any(p.name.startswith("-") or unsafe_reason(str(p)) for p in images):
        links = list(images)
    else:
        links = []
        for k, item in enumerate(images):
            link = scratch / f"{k:05d}{item.suffix.lower()}"
            shutil.copyfile(item, link)
            links.append(link)
    argv = [str(tool), str(cfg_path)] + ([str(names_file)] if names_file else []) + [str(weights_path)]
    argv += [str(p) for p in links] + ["-thresh", str(thresh)] + list(extra_args)
    chunks: list[str] = []
    seen = {"n": 0}

    def on_text(text: str) -> None:
        chunks.append(text)
        seen["n"] += text.count("loading \"")
        reporter.progress(f"detect: {seen['n']}/{len(images)} images")

    annotated: list[Path] = []
    try:
        result = runner.run(argv, cwd=scratch, log_path=None, on_text=on_text,
                            watchdog=runner.Watchdog(silence_s=300.0), env=_display_free_env(env))
        for link, item in zip(links, images):
            produced = scratch / f"{Path(link).stem}_output.jpg"
            if produced.is_file():
                target = _unique(out / f"{_result_stem(item)}_predictions.jpg")
                shutil.move(str(produced), str(target))
                annotated.append(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    output = "".join(chunks)
    rows, invalid = parse_hank_tool(output, names)
    back = {str(Path(link).resolve()): str(item) for link, item in zip(links, images)}
    for row in rows:
        row["image"] = back.get(row["image"], row["image"])
    if invalid:
        raise StepError(f"darknet could not read {back.get(invalid[0], invalid[0])} as an image",
                        fix="give an image file (jpg, png, ...)",
                        problems=[Problem("bad-image", f"not an image: {back.get(p, p)}") for p in invalid])
    return result, output, rows, annotated


_MAP_ANY = re.compile(r"mean average precision \(mAP@(?P<iou>[\d.]+)\)\s*=\s*(?P<map>[\d.]+)")
_PRF = re.compile(r"precision = (?P<p>[\d.]+), recall = (?P<r>[\d.]+), F1-score = (?P<f>[\d.]+)")


def map_at_any_iou(text: str):
    """The mAP line at any ``-iou_thresh`` (``mAP@0.10``): the training parser knows mAP@0.50 only. The value goes
    into the ``map50`` column (the frame's shape is training's), with the IoU it was computed at in ``iou``."""
    import pandas as pd

    from ..output.history import MAP_COLUMNS

    rows = []
    for m in _MAP_ANY.finditer(text):
        row = dict.fromkeys(MAP_COLUMNS, float("nan"))
        row.update(iteration=None, map50=float(m["map"]), iou=float(m["iou"]))
        prf = list(_PRF.finditer(text[:m.start()]))
        if prf:
            row.update(precision=float(prf[-1]["p"]), recall=float(prf[-1]["r"]), f1=float(prf[-1]["f"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(MAP_COLUMNS) + ["iou"])


def evaluate_map(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, cwd: Optional[Path] = None,
                 reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
                 env: Optional[dict] = None, iou_thresh: Optional[float] = None, points: Optional[int] = None,
                 extra_args: Sequence[str] = (), show: bool = True) -> MapReport:
    """``darknet detector map``: mAP@0.50 and per-class AP into the same frames as training's.

    `iou_thresh` and `points` are darknet's ``-iou_thresh`` (0.5: mAP@0.50) and ``-points`` (0: every point, as
    VOC2010+/COCO; 11: VOC2007; 101: COCO's); `extra_args` are further darknet flags (checked per flavor).
    """
    from ..setup.binary import check_darknet_args

    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = _model_files(darknet, data, cfg, weights)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    flavor = flavor or darknet_flavor(darknet_path)
    unsupported = StepError(
        "this darknet has no `detector map` (pjreddie's darknet prints nothing and exits)",
        fix="use AlexeyAB's or hank-ai's darknet for %yolo map, or train with `map` on one of them",
        problems=[Problem("unsupported-command", "`detector map` is not a command of pjreddie's darknet",
                          fix="build AlexeyAB/darknet or hank-ai/darknet")])
    if flavor == "pjreddie":
        raise unsupported
    argv = [str(darknet_path), "detector", "map", str(data_path), str(cfg_path), str(weights_path), "-dont_show"]
    if iou_thresh is not None:
        argv += ["-iou_thresh", str(float(iou_thresh))]
    if points is not None:
        argv += ["-points", str(int(points))]
    errors = check_darknet_args(flavor, "map", list(extra_args))
    if errors:
        raise StepError("; ".join(errors), fix="see the flags this darknet knows in docs/directives/yolo-map.md")
    argv += list(extra_args)
    check_weights_file(cfg_path, weights_path)
    from ..output.history import History
    from ..output.logparse import LogParser

    parser = LogParser(flavor=flavor)
    history = History()
    chunks: list[str] = []

    def on_text(text: str) -> None:
        chunks.append(text)
        history.add(parser.feed(text))

    result = runner.run(argv, cwd=cwd, log_path=None, on_text=on_text, watchdog=runner.Watchdog(silence_s=1800.0),
                        env=env)
    history.add(parser.close())
    output = "".join(chunks)
    if not output.strip():
        raise unsupported
    maps = history.maps
    if not len(maps):
        maps = map_at_any_iou(output)
    if not len(maps):
        problems = diagnose(output, returncode=result.returncode, signal=result.signal, flavor=flavor,
                            command=argv)
        raise StepError(f"darknet detector map gave no mAP ({result.describe()})",
                        fix=problems[0].fix if problems else None, problems=problems, details=last_output(output))
    report = MapReport(maps=maps, class_ap=history.class_ap, output=output)
    if show:
        reporter.dataframe(report.class_ap, title=report.summary())
    return report



# ----------------------------------------------------------------------------------------------------------------
# The best checkpoint

_CHECKPOINT = re.compile(r"_(?P<tag>\d+|best|last|final)\.weights$")


def checkpoint_files(folder: Path) -> list[tuple[Optional[int], str, Path]]:
    """Weights files of a run's (or backup) folder as (iteration, tag, path), numbered ones by iteration, then
    ``_best``, ``_last``, ``_final``. Iteration is None where the name does not say it (best/last/final)."""
    found = []
    for path in sorted(Path(folder).rglob("*.weights")):
        m = _CHECKPOINT.search(path.name)
        if not m:
            continue
        tag = m["tag"]
        found.append((int(tag) if tag.isdigit() else None, tag, path))
    order = {"best": 1, "last": 2, "final": 3}
    found.sort(key=lambda t: (0, t[0], "") if t[0] is not None else (order[t[1]], 0, str(t[2])))
    return found


@dataclass
class CheckpointReport:
    """`evaluate_checkpoints`: one row per weights file, and the best of them by mAP@0.50; `figure` the chart's
    spec (a plotly ``{"data", "layout"}`` dict), `saved` where the table and chart were written (None if not)."""

    table: Any
    class_ap: Any
    best: Optional[Path]
    figure: Optional[dict] = None
    saved: Optional[Any] = None

    def summary(self) -> str:
        if self.best is None:
            return "no checkpoint gave a mAP"
        row = self.table.loc[self.table["path"] == str(self.best)].iloc[0]
        return (f"best: {self.best.name} (mAP@0.50 {100 * row['map']:.2f}%) of {len(self.table)} checkpoint(s)")


def evaluate_checkpoints(darknet: Path | str, data: Path, cfg: Path, folder: Path, *, cwd: Optional[Path] = None,
                         reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
                         iou_thresh: Optional[float] = None, points: Optional[int] = None,
                         extra_args: Sequence[str] = (), env: Optional[dict] = None) -> CheckpointReport:
    """``detector map`` on every weights file of `folder` (_1000, _2000, ..., _best, _last, _final).

    The iteration of ``_best``, ``_last`` and ``_final`` (not in their names) is read from the weights file's
    header (images seen / the cfg's batch, as darknet counts it). The table is shown with a chart (mAP, precision,
    recall, F1 by iteration, the best marked), and both are saved in the run's folder (`folder`, or its parent
    when `folder` is a run's backup folder): ``checkpoints.csv``, ``checkpoints.html`` and, where a notebook shows
    it, ``checkpoints.png``.

    Returns:
        A `CheckpointReport`: `table` has iteration, tag, path, map, precision, recall, f1 (and avg_iou where
        printed), `class_ap` one row per (checkpoint, class), and `best` the file with the highest mAP@0.50.
    """
    import pandas as pd

    from ..view import live

    reporter = reporter or Reporter()
    files = checkpoint_files(Path(folder).expanduser())
    if not files:
        raise StepError(f"no checkpoint (NAME_1000.weights, NAME_best.weights, ...) in {folder}",
                        fix="give the run's folder or its backup folder (obj.data's backup=)")
    rows, aps = [], []
    for k, (iteration, tag, path) in enumerate(files, 1):
        reporter.progress(f"map: checkpoint {k}/{len(files)}: {path.name}")
        if iteration is None:  # _best/_last/_final: the header says how far training was
            iteration = weights_iteration(path, Path(cfg))
        try:
            report = evaluate_map(darknet=darknet, data=data, cfg=cfg, weights=path, cwd=cwd, reporter=reporter,
                                  flavor=flavor, env=env, iou_thresh=iou_thresh, points=points,
                                  extra_args=extra_args, show=False)
        except StepError as exc:
            reporter.warn(f"{path.name}: {exc.args[0] if exc.args else exc}")
            rows.append({"iteration": iteration, "tag": tag, "path": str(path), "map": float("nan")})
            continue
        last = report.maps.iloc[-1].to_dict()
        row = {"iteration": iteration, "tag": tag, "path": str(path), "map": float(last.get("map50", float("nan")))}
        for key in ("precision", "recall", "f1", "avg_iou", "tp", "fp", "fn"):
            if key in last:
                row[key] = last[key]
        rows.append(row)
        ap = report.class_ap.copy()
        ap.insert(0, "checkpoint", path.name)
        aps.append(ap)
    table = pd.DataFrame(rows)
    table["iteration"] = table["iteration"].astype("Int64")  # None for _best/_last/_final
    class_ap = pd.concat(aps, ignore_index=True) if aps else pd.DataFrame()
    scored = table.dropna(subset=["map"])
    if not len(scored):
        raise StepError(f"no checkpoint in {folder} gave a mAP ({len(files)} tried)",
                        fix="see the warnings above: each names its file and darknet's error")
    best = Path(scored.loc[scored["map"].idxmax(), "path"])
    result = CheckpointReport(table=table, class_ap=class_ap, best=best)
    reporter.progress(f"map: {len(files)} checkpoint(s) evaluated", final=True)
    reporter.dataframe(table, title=result.summary())
    run_dir = checkpoint_run_dir(Path(folder).expanduser())
    result.figure = live.checkpoint_figure(table, str(best), title=f"checkpoints of {run_dir.name}")
    bundle = live.show_figure(reporter, f"darknet-checkpoints:{run_dir}", result.figure,
                              f"checkpoint chart: {run_dir / 'checkpoints.html'}")
    try:
        from ..fileio import atomic_write_text

        atomic_write_text(run_dir / "checkpoints.csv", table.to_csv(index=False))
        png = (bundle or {}).get("image/png")
        # the PNG where a notebook shows the chart (as the training chart's chart.png), made once for both
        result.saved = live.write_figure(result.figure, run_dir, name="checkpoints", title=result.summary(),
                                         png=bundle is not None, png_data=base64.b64decode(png) if png else None)
    except OSError as exc:  # a read-only folder: the table and chart are still shown and returned
        reporter.warn(f"the checkpoint table and chart were not saved in {run_dir}: {exc}")
    return result


def checkpoint_run_dir(folder: Path) -> Path:
    """Where `evaluate_checkpoints` saves its table and chart: the run's folder (a backup folder's parent, when
    that parent holds the run's run.json), else the folder given."""
    return folder.parent if (folder.parent / RUN_JSON).is_file() and not (folder / RUN_JSON).is_file() else folder


# ----------------------------------------------------------------------------------------------------------------
# Video

@dataclass
class VideoResult:
    """`detect_video`: darknet's annotated video, a browser-playable copy (mp4/H.264 where ffmpeg exists), frames."""

    video: Path
    playable: Optional[Path]
    frames: int
    output: str

    def summary(self) -> str:
        return f"{self.frames} frame(s) annotated: {self.playable or self.video}"


def has_opencv(darknet: Path) -> bool:
    """Was this darknet built with OpenCV (needed to read and write video)? AlexeyAB without it prints
    'Demo needs OpenCV for webcam images.' (that string is in its binary only then); hank-ai always links it."""
    flavor = darknet_flavor(darknet)
    if flavor == "hank-ai":
        return True
    try:
        data = Path(darknet).read_bytes()
    except OSError:
        return False
    return b"Demo needs OpenCV" not in data and (b"cvWriteFrame" in data or b"opencv" in data.lower())


def video_frames(path: Path) -> Optional[int]:
    """Frame count by ffprobe (None without ffprobe or when it cannot tell)."""
    import subprocess

    probe = shutil.which("ffprobe")
    if not probe:
        return None
    try:
        out = subprocess.run([probe, "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                              "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                             capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().split(",")[0])
    except (OSError, ValueError, subprocess.SubprocessError, IndexError):
        return None


def playable_copy(video: Path, reporter: Reporter) -> Optional[Path]:
    """An H.264 mp4 beside `video` that browsers play (darknet writes MJPG .avi or mp4v .m4v); None without ffmpeg."""
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        reporter.warn("no ffmpeg: the annotated video is not converted for inline playing")
        return None
    target = _unique(video.with_name(video.stem + "_play.mp4"))
    run = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(video), "-c:v",
                          "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(target)],
                         capture_output=True, text=True, timeout=3600)
    if run.returncode != 0 or not target.is_file():
        reporter.warn(f"ffmpeg could not convert {video.name}: {run.stderr.strip()[-300:]}")
        return None
    return target


def detect_video(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, video: Path,
                 out: Optional[Path] = None, thresh: Optional[float] = 0.25, cwd: Optional[Path] = None,
                 reporter: Optional[Reporter] = None, flavor: Optional[str] = None, env: Optional[dict] = None,
                 extra_args: Sequence[str] = (), show_result: bool = True) -> VideoResult:
    """Annotate a video: AlexeyAB's ``detector demo ... -out_filename OUT -dont_show`` or hank-ai's
    ``darknet_04_process_videos``; frame progress through `reporter.progress`; the result shown inline."""
    from ..setup.binary import check_darknet_args

    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = _model_files(darknet, data, cfg, weights)
    video_path = require_file(Path(video), "video")
    check_argv_paths(video=video_path)
    flavor = flavor or darknet_flavor(darknet_path)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    out = Path(out).expanduser().resolve() if out else cwd
    check_argv_paths(out=out)  # darknet writes its pictures (pjreddie: -out) or video there
    if flavor == "pjreddie":
        raise StepError("pjreddie's darknet writes no video file (its `detector demo` only shows a window)",
                        fix="use AlexeyAB's darknet (make OPENCV=1) or hank-ai's for %yolo video")
    if not has_opencv(darknet_path):
        raise StepError(f"{darknet_path} was built without OpenCV: it cannot read or write video",
                        fix="rebuild with OPENCV=1 (apt-get install libopencv-dev first)",
                        problems=[Problem("opencv-missing", "darknet built without OpenCV")])
    errors = check_darknet_args(flavor, "video", list(extra_args))
    if errors:
        raise StepError("; ".join(errors), fix="see docs/directives/yolo-video.md")
    check_weights_file(cfg_path, weights_path)
    out.mkdir(parents=True, exist_ok=True)
    total = video_frames(video_path)
    thresh = 0.25 if thresh is None else float(thresh)
    state = {"frames": 0}
    chunks: list[str] = []
    if flavor == "hank-ai":
        tool = hank_tool(darknet_path, "darknet_04_process_videos")
        if tool is None:
            raise StepError("hank-ai's darknet_04_process_videos is not beside this darknet",
                            fix="build hank-ai's src-examples (its CMake builds them by default)")
        scratch = Path(tempfile.mkdtemp(prefix=".video-", dir=out))
        names_file = _names_file(data_path)
        argv = [str(tool), str(cfg_path)] + ([str(names_file)] if names_file else []) + [str(weights_path),
                                                                                          str(video_path)]
        argv += ["-thresh", str(thresh)] + list(extra_args)
        frame_rx = re.compile(r"-> frame #(\d+)/(\d+)")
        run_cwd = scratch
    else:
        scratch = None
        produced = _unique(out / f"{video_path.stem}_predictions.avi")
        argv = [str(darknet_path), "detector", "demo", str(data_path), str(cfg_path), str(weights_path),
                str(video_path), "-dont_show", "-out_filename", str(produced), "-thresh", str(thresh)]
        argv += list(extra_args)
        frame_rx = None
        run_cwd = cwd

    def on_text(text: str) -> None:
        chunks.append(text)
        if frame_rx is None:
            state["frames"] += text.count("cvWriteFrame")
        else:
            for m in frame_rx.finditer(text):
                state["frames"] = int(m.group(1))
        reporter.progress(f"video: frame {state['frames']}" + (f"/{total}" if total else ""))

    try:
        result = runner.run(argv, cwd=run_cwd, log_path=None, on_text=on_text,
                            watchdog=runner.Watchdog(silence_s=600.0), env=_display_free_env(env))
        if scratch is not None:
            found = sorted(scratch.glob("*_output.m4v"))
            produced = _unique(out / f"{video_path.stem}_predictions.m4v")
            if found:
                shutil.move(str(found[0]), str(produced))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    output = "".join(chunks)
    if not produced.is_file() or produced.stat().st_size == 0 or result.returncode not in (0, None):
        raise _fail("darknet wrote no annotated video", output, result, flavor, argv)
    if flavor == "hank-ai":
        state["frames"] = max(state["frames"], int((re.findall(r"total frames processed \.+ (\d+)", output) or [0])[-1]))
    reporter.progress(f"video: {state['frames']} frame(s) written to {produced.name}", final=True)
    playable = playable_copy(produced, reporter)
    res = VideoResult(video=produced, playable=playable, frames=state["frames"], output=output)
    if show_result:
        show(playable or produced, reporter=reporter)
    return res


# ----------------------------------------------------------------------------------------------------------------
# show: the imShow idiom

INLINE_VIDEO_LIMIT = 50 * 1024 * 1024  # an inline data: URL larger than this makes the notebook file unwieldy


def video_html(path: Path) -> str:
    """A <video> tag that plays `path` inline (as a data: URL, so it also works in Colab, where the kernel's
    files are not served to the browser)."""
    import base64
    import html

    kind = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogg": "video/ogg"}.get(
        path.suffix.lower(), "video/mp4")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<video controls width="640" title="{html.escape(path.name)}">'
            f'<source src="data:{kind};base64,{data}" type="{kind}"></video>')


def show(path: Path | str, *, reporter: Optional[Reporter] = None, download: bool = False) -> Path:
    """Show an image or a video file inline; in Colab, `download=True` also offers it for download."""
    from ..setup import colab

    reporter = reporter or Reporter()
    path = Path(path).expanduser()
    if not path.is_file():
        raise StepError(f"{path} does not exist", fix="give the path of an image or video file",
                        problems=[Problem("missing-file", f"not found: {path}", file=str(path))])
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if path.stat().st_size > INLINE_VIDEO_LIMIT:
            reporter.warn(f"{path.name} is {path.stat().st_size / 1e6:.0f} MB: too big to show inline; download it")
        else:
            reporter.html(f"video:{path}", video_html(path), text=f"video: {path}")
    elif suffix in IMAGE_SUFFIXES or image_size(path) is not None:
        reporter.image(str(path))
    else:
        raise StepError(f"{path.name} is neither an image nor a video we can show",
                        fix=f"images: {', '.join(IMAGE_SUFFIXES)}; videos: {', '.join(VIDEO_SUFFIXES)}")
    if download:
        if colab.in_colab():
            colab.download(str(path))
        else:
            reporter.info(f"download is offered in Colab only; the file is {path}")
    return path
