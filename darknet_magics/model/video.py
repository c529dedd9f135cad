"""`%yolo video`: darknet's detections drawn on every frame of a video, and a copy the browser can play.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..run import runner
from ..setup.binary import darknet_flavor, require_file
from ..errors import Problem, StepError
from ..report import Reporter
from ..safenames import check_argv_paths
from ..view.show import show
from .detect import display_free_env, darknet_failure
from .inputs import model_files, class_names_file, unique_path, check_weights_file, hank_tool


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
    target = unique_path(video.with_name(video.stem + "_play.mp4"))
    run = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(video), "-c:v",
                          "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(target)],
                         capture_output=True, text=True, timeout=3600)
    if run.returncode != 0 or not target.is_file():
        reporter.warn(f"ffmpeg could not convert {video.name}: {run.stderr.strip()[-300:]}")
        return None
    return target


def _refuse_unable(flavor: str, darknet_path: Path, extra_args: Sequence[str]) -> None:
    """Refuse a darknet that cannot annotate a video: pjreddie's (no video file), one without OpenCV, or `args=`
    words its flavor does not know."""
    from ..setup.binary import check_darknet_args

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


@dataclass
class _VideoCommand:
    """How one flavor annotates a video: the argv, where it runs, and where the video lands.

    hank-ai's tool writes ``*_output.m4v`` into its working folder, so it runs in a scratch folder (`scratch`)
    and `produced` is known only after; AlexeyAB's writes `produced` itself."""

    argv: list[str]
    cwd: Path
    scratch: Optional[Path]
    produced: Optional[Path]
    frame_rx: Optional[re.Pattern]


def _video_command(flavor: str, darknet_path: Path, data_path: Path, cfg_path: Path, weights_path: Path,
                   video_path: Path, out: Path, cwd: Path, thresh: float, extra_args: Sequence[str]) -> _VideoCommand:
    """The command for `flavor` (hank-ai's ``darknet_04_process_videos`` or AlexeyAB's ``detector demo``)."""
    if flavor == "hank-ai":
        tool = hank_tool(darknet_path, "darknet_04_process_videos")
        if tool is None:
            raise StepError("hank-ai's darknet_04_process_videos is not beside this darknet",
                            fix="build hank-ai's src-examples (its CMake builds them by default)")
        scratch = Path(tempfile.mkdtemp(prefix=".video-", dir=out))
        names_file = class_names_file(data_path)
        argv = [str(tool), str(cfg_path)] + ([str(names_file)] if names_file else []) + [str(weights_path),
                                                                                          str(video_path)]
        argv += ["-thresh", str(thresh)] + list(extra_args)
        return _VideoCommand(argv, scratch, scratch, None, re.compile(r"-> frame #(\d+)/(\d+)"))
    produced = unique_path(out / f"{video_path.stem}_predictions.avi")
    argv = [str(darknet_path), "detector", "demo", str(data_path), str(cfg_path), str(weights_path),
            str(video_path), "-dont_show", "-out_filename", str(produced), "-thresh", str(thresh)]
    return _VideoCommand(argv + list(extra_args), cwd, None, produced, None)


class _FrameCounter:
    """Counts the frames darknet reports as its output streams (AlexeyAB: each ``cvWriteFrame``; hank-ai: its
    ``-> frame #N/M`` lines) and keeps the output."""

    def __init__(self, frame_rx: Optional[re.Pattern], total: Optional[int], reporter: Reporter) -> None:
        self.frame_rx, self.total, self.reporter = frame_rx, total, reporter
        self.frames = 0
        self.chunks: list[str] = []

    def __call__(self, text: str) -> None:
        self.chunks.append(text)
        if self.frame_rx is None:
            self.frames += text.count("cvWriteFrame")
        else:
            for m in self.frame_rx.finditer(text):
                self.frames = int(m.group(1))
        self.reporter.progress(f"video: frame {self.frames}" + (f"/{self.total}" if self.total else ""))


def _run_video(command: _VideoCommand, counter: _FrameCounter, out: Path, video_path: Path,
               env: Optional[dict]) -> tuple[runner.ProcessResult, Path]:
    """Run the command; hank-ai's video is moved out of its scratch folder (removed in any case). Returns the
    process's result and the video's path (which may not exist when darknet failed)."""
    produced = command.produced
    try:
        result = runner.run(command.argv, cwd=command.cwd, log_path=None, on_text=counter,
                            watchdog=runner.Watchdog(silence_s=600.0), env=display_free_env(env))
        if command.scratch is not None:
            found = sorted(command.scratch.glob("*_output.m4v"))
            produced = unique_path(out / f"{video_path.stem}_predictions.m4v")
            if found:
                shutil.move(str(found[0]), str(produced))
    finally:
        if command.scratch is not None:
            shutil.rmtree(command.scratch, ignore_errors=True)
    assert produced is not None  # AlexeyAB's is planned, hank-ai's set above
    return result, produced


def detect_video(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, video: Path,
                 out: Optional[Path] = None, thresh: Optional[float] = 0.25, cwd: Optional[Path] = None,
                 reporter: Optional[Reporter] = None, flavor: Optional[str] = None, env: Optional[dict] = None,
                 extra_args: Sequence[str] = (), show_result: bool = True) -> VideoResult:
    """Annotate a video: AlexeyAB's ``detector demo ... -out_filename OUT -dont_show`` or hank-ai's
    ``darknet_04_process_videos``; frame progress through `reporter.progress`; the result shown inline."""
    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = model_files(darknet, data, cfg, weights)
    video_path = require_file(Path(video), "video")
    check_argv_paths(video=video_path)
    flavor = flavor or darknet_flavor(darknet_path)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    out = Path(out).expanduser().resolve() if out else cwd
    check_argv_paths(out=out)  # darknet writes its pictures (pjreddie: -out) or video there
    _refuse_unable(flavor, darknet_path, extra_args)
    check_weights_file(cfg_path, weights_path)
    out.mkdir(parents=True, exist_ok=True)
    total = video_frames(video_path)
    thresh = 0.25 if thresh is None else float(thresh)
    command = _video_command(flavor, darknet_path, data_path, cfg_path, weights_path, video_path, out, cwd,
                             thresh, extra_args)
    counter = _FrameCounter(command.frame_rx, total, reporter)
    result, produced = _run_video(command, counter, out, video_path, env)
    output = "".join(counter.chunks)
    if not produced.is_file() or produced.stat().st_size == 0 or result.returncode not in (0, None):
        raise darknet_failure("darknet wrote no annotated video", output, result, flavor, command.argv)
    frames = counter.frames
    if flavor == "hank-ai":
        frames = max(frames, int((re.findall(r"total frames processed \.+ (\d+)", output) or [0])[-1]))
    reporter.progress(f"video: {frames} frame(s) written to {produced.name}", final=True)
    playable = playable_copy(produced, reporter)
    res = VideoResult(video=produced, playable=playable, frames=frames, output=output)
    if show_result:
        show(playable or produced, reporter=reporter)
    return res
