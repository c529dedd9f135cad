"""`%yolo test` and `%yolo map`: run darknet on one image or on the validation list, parse what it prints.

pjreddie's build with OpenCV opens a window after writing predictions.jpg: we run it without a display (it aborts
right after saving) and a watchdog ends it if it waits for a key instead. AlexeyAB and hank-ai get
``-dont_show -ext_output``. pjreddie has no ``detector map``: it prints nothing and exits 0, which is diagnosed.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import runner
from .binary import darknet_flavor, last_output, require_file, resolve_darknet
from .errors import Problem, StepError
from .report import Reporter

_DETECTION = re.compile(
    r"^(?P<name>[^\s:][^:\r\n]*?):\s*(?P<conf>\d+(?:\.\d+)?)%"
    r"(?:\s*\(left_x:\s*(?P<left>-?\d+)\s+top_y:\s*(?P<top>-?\d+)\s+width:\s*(?P<width>-?\d+)\s+"
    r"height:\s*(?P<height>-?\d+)\))?\s*$")


def parse_detections(text: str):
    """Detections printed by ``detector test``: ``name: 99%`` (pjreddie), plus boxes with ``-ext_output``."""
    import pandas as pd

    from .live import _ANSI

    rows = []
    seen_prediction = False
    for raw in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        line = raw.rsplit("\r", 1)[-1].strip()
        if "Predicted in" in line:
            seen_prediction = True
            continue
        if not seen_prediction:
            continue
        m = _DETECTION.match(line)
        if m:
            row = {"name": m["name"].strip(), "confidence": float(m["conf"]) / 100.0}
            if m["left"] is not None:
                row.update(left=int(m["left"]), top=int(m["top"]), width=int(m["width"]), height=int(m["height"]))
            rows.append(row)
    columns = ["name", "confidence"] + (["left", "top", "width", "height"] if any("left" in r for r in rows) else [])
    return pd.DataFrame(rows, columns=columns)


@dataclass
class DetectResult:
    """What `detect` produced: the predictions image, the detections, darknet's output."""

    image_path: Optional[Path]
    detections: Any
    output: str
    returncode: Optional[int] = None
    signal: Optional[int] = None

    def summary(self) -> str:
        n = len(self.detections)
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


def detect(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, image: Path, thresh: Optional[float] = 0.25,
           cwd: Optional[Path] = None, reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
           env: Optional[dict] = None) -> DetectResult:
    """``darknet detector test`` on one image: the predictions image (shown) and the detections frame.

    pjreddie's build with OpenCV shows a window after writing predictions.jpg: we run it without a display
    (it aborts right after saving) and a watchdog ends it if it waits for a key instead. AlexeyAB and hank-ai
    get ``-dont_show -ext_output`` (boxes in the frame).
    """
    reporter = reporter or Reporter()
    darknet_path = resolve_darknet(darknet)
    data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
    weights_path, image_path = require_file(Path(weights), "weights"), require_file(Path(image), "image")
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    flavor = flavor or darknet_flavor(darknet_path)
    thresh = 0.25 if thresh is None else float(thresh)
    argv = [str(darknet_path), "detector", "test", str(data_path), str(cfg_path), str(weights_path), str(image_path),
            "-thresh", str(thresh)]
    if flavor != "pjreddie":
        argv += ["-dont_show", "-ext_output"]
    started = time.time()
    chunks: list[str] = []
    watchdog = runner.Watchdog(done=(r"Predicted in",), after_done_s=3.0, silence_s=300.0)
    result = runner.run(argv, cwd=cwd, log_path=None, on_text=chunks.append, watchdog=watchdog,
                        env=_display_free_env(env), prompts=(("Enter Image Path:", ""),))
    output = "".join(chunks)
    predictions = None
    for suffix in (".jpg", ".png"):
        candidate = cwd / f"predictions{suffix}"
        if candidate.is_file() and candidate.stat().st_mtime >= started - 1:
            predictions = candidate
            break
    if predictions is None or "Predicted in" not in output:
        from .judge import diagnose

        problems = diagnose(output, returncode=result.returncode, signal=result.signal, flavor=flavor,
                            command=argv)
        raise StepError(f"darknet detector test failed ({result.describe()})",
                        fix=problems[0].fix if problems else None, problems=problems, details=last_output(output))
    detections = parse_detections(output)
    reporter.image(str(predictions))
    reporter.dataframe(detections, title=f"{len(detections)} detection(s) at thresh {thresh}")
    return DetectResult(image_path=predictions, detections=detections, output=output,
                        returncode=result.returncode, signal=result.signal)


def evaluate_map(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, cwd: Optional[Path] = None,
                 reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
                 env: Optional[dict] = None) -> MapReport:
    """``darknet detector map``: mAP@0.50 and per-class AP into the same frames as training's."""
    reporter = reporter or Reporter()
    darknet_path = resolve_darknet(darknet)
    data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
    weights_path = require_file(Path(weights), "weights")
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
    from .history import History
    from .logparse import LogParser

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
    if not len(history.maps):
        from .judge import diagnose

        problems = diagnose(output, returncode=result.returncode, signal=result.signal, flavor=flavor,
                            command=argv)
        raise StepError(f"darknet detector map gave no mAP ({result.describe()})",
                        fix=problems[0].fix if problems else None, problems=problems, details=last_output(output))
    report = MapReport(maps=history.maps, class_ap=history.class_ap, output=output)
    reporter.dataframe(report.class_ap, title=report.summary())
    return report

