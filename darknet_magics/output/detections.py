"""darknet's detections as text in, rows out (pure): every flavor's printout of boxes, and what went wrong.

The parsers are tested on captured real output (tests/fixtures/detections).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

from ..output.logparse import strip_escapes
from ..errors import Problem


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
