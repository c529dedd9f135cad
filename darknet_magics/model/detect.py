"""`%yolo test`: darknet's detections on images (a file, a folder, a glob, a list), one darknet process for all.

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
image), and the weights are checked against the cfg as training does (`inputs`). The parsers of darknet's
printout are pure and live on the output floor (`output.detections`); `%yolo map` is `darknet_map`, `%yolo video`
is `video`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..run import runner
from ..setup.binary import darknet_flavor, last_output
from ..output.judge import diagnose
from ..setup.runtime import nvidia_gpu_found
from ..errors import Problem, StepError
from ..data.formats import image_size  # our check that a file is an image before darknet sees it
from ..report import Reporter
from ..safenames import check_argv_paths, check_darknet_path, safe_link, unsafe_reason
from ..output.detections import COLUMNS, _PROMPT, inference_problems, parse_hank_tool, parse_prompt_batch
from .inputs import (check_line_endings, check_weights_file, class_names_file, hank_tool, model_files, names_from_data,
                     resolve_images, unique_path)


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


def display_free_env(env: Optional[dict]) -> dict:
    """Our environment without a display: pjreddie's OpenCV window then fails at once instead of waiting."""
    env = dict(os.environ if env is None else env)
    for key in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(key, None)
    env["QT_QPA_PLATFORM"] = "xcb"  # 'offscreen' would open an invisible window and wait for a key forever
    return env


def darknet_failure(what: str, output: str, result, flavor: Optional[str], argv: list[str]) -> StepError:
    problems = inference_problems(output) + diagnose(output, returncode=result.returncode, signal=result.signal,
                                                     flavor=flavor, command=argv, gpu_found=nvidia_gpu_found)
    return StepError(f"{what} ({result.describe()})", fix=problems[0].fix if problems else None, problems=problems,
                     details=last_output(output))


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
    darknet_path, data_path, cfg_path, weights_path = model_files(darknet, data, cfg, weights)
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
    for p in _refuse_failure(output, result, flavor, darknet_path, len(images), len(annotated)):
        reporter.warn(p.describe())  # e.g. missing label glyphs: boxes are drawn without names
    detections = _frame(rows, sizes)
    reporter.progress(f"detect: {len(images)}/{len(images)} images in {seconds:.1f} s", final=True)
    _show_gallery(reporter, annotated, gallery, out)
    reporter.dataframe(detections, title=f"{len(detections)} detection(s) on {len(images)} image(s) at thresh {thresh}")
    return DetectResult(image_path=annotated[0] if annotated else None, detections=detections, output=output,
                        returncode=result.returncode, signal=result.signal, images=images, annotated=annotated,
                        seconds=seconds)


def _refuse_failure(output: str, result: runner.ProcessResult, flavor: str, darknet_path: Path, images: int,
                    annotated: int) -> list[Problem]:
    """Raise when darknet failed (a bad image, a non-zero exit, a signal) or stopped before the last image;
    otherwise return the problems it printed that are only warnings."""
    problems = inference_problems(output)
    command = [str(darknet_path), "detector", "test"]
    if problems and problems[0].code == "bad-image" or result.returncode not in (0, None) or result.signal:
        raise darknet_failure("darknet detector test failed", output, result, flavor, command)
    if annotated < images:
        raise darknet_failure(f"darknet stopped after {annotated} of {images} images", output, result, flavor,
                              command)
    return problems


def _show_gallery(reporter: Reporter, annotated: list[Path], gallery: int, out: Path) -> None:
    """Show the first `gallery` annotated images and say where the rest are."""
    for path in annotated[:gallery]:
        reporter.image(str(path))
    if len(annotated) > gallery:
        reporter.info(f"... and {len(annotated) - gallery} more annotated image(s) in {out}")


def _detect_prompt_linked(darknet_path, data_path, cfg_path, weights_path, images, thresh, cwd, out, reporter,
                          env, flavor, extra_args):
    """`detect_prompt` with each image that breaks the name rule typed as a safe link (`_safe_images`); the rows,
    the pictures' names and darknet's output name the user's own files, not the links."""
    fed, links = _safe_images(images, out)
    try:
        result, output, rows, annotated = detect_prompt(darknet_path, data_path, cfg_path, weights_path, fed,
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


def detect_prompt(darknet_path, data_path, cfg_path, weights_path, images, thresh, cwd, out, reporter, env,
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
                target = unique_path(out / f"{stems[index]}_predictions{suffix}")
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
                            watchdog=runner.Watchdog(silence_s=300.0), env=display_free_env(env),
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
    names = names_from_data(data_path)
    names_file = class_names_file(data_path)
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
                            watchdog=runner.Watchdog(silence_s=300.0), env=display_free_env(env))
        for link, item in zip(links, images):
            produced = scratch / f"{Path(link).stem}_output.jpg"
            if produced.is_file():
                target = unique_path(out / f"{_result_stem(item)}_predictions.jpg")
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
