"""`%yolo eval`: darknet's detections on the validation list, matched to the ground truth by us, on every flavor.

One darknet process predicts every validation image at a low threshold (0.005, as ``detector map``), with the
non-maximum suppression (0.45) and letterboxing that ``detector map`` uses, on an obj.data of our own (the images
linked into a scratch folder as ``000000.png``, ``000001.jpg``, ...; the classes named ``c0``, ``c1``, ...), so that
darknet's image ids, its JSON and its file names never depend on the user's names:

* AlexeyAB and hank-ai: ``detector test ... -thresh 0.005 -dont_show -ext_output -out dets.json`` with the paths
  typed at its prompt (`inference`'s batch form); the JSON has each box with its full-precision confidence.
* pjreddie (whose ``detector test`` prints no boxes and which has no ``detector map``): ``detector valid``, which
  writes ``det_cK.txt`` files (``id score x0 y0 x1 y1`` in pixels, 1-based) into ``results=``.

The metrics are `metrics`' (pure); this module reads what darknet and the label files say, and checks it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..data.formats import image_size, label_path
from ..data.objdata import values as objdata_values
from ..errors import Problem, StepError
from ..report import Reporter
from ..run import runner
from ..setup.binary import darknet_flavor
from . import metrics
from .detect import detect_prompt, darknet_failure, display_free_env
from .inputs import check_weights_file, model_files, names_from_data, resolve_images

DETECT_THRESH = 0.005  # detector map's own threshold: the same detections, so the same AP
_MAX_LABEL_BYTES = 10 * 1024 * 1024  # a label file this big is no label file


def _label_problem(path: Path, line: int, what: str) -> StepError:
    return StepError(f"{path}:{line}: {what}", fix="a label line is `class x_center y_center width height`, the "
                     "class 0..classes-1 and the rest finite numbers in 0..1 (run `%yolo check`)",
                     problems=[Problem("bad-label", what, file=str(path), line=line)])


def parse_labels(text: str, path: Path, classes: int) -> np.ndarray:
    """One YOLO label file as an (n, 5) array ``class x0 y0 x1 y1`` (relative corners); every line checked.

    Raises:
        StepError: a line that is not 5 numbers, a class outside 0..classes-1, a non-finite number (file:line).
    """
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 5:
            raise _label_problem(path, number, f"{len(words)} fields, not 5: {line.strip()[:80]!r}")
        try:
            cls, x, y, w, h = int(words[0]), *(float(v) for v in words[1:])
        except ValueError:
            raise _label_problem(path, number, f"not numbers: {line.strip()[:80]!r}") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise _label_problem(path, number, f"a number that is not finite: {line.strip()[:80]!r}")
        if not 0 <= cls < classes:
            raise _label_problem(path, number, f"class {cls} is not one of 0..{classes - 1}")
        rows.append((cls, x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return np.array(rows, dtype=float).reshape(-1, 5)


def read_ground_truth(images: Sequence[Path], classes: int, flavor: str = "alexeyab") -> list[np.ndarray]:
    """The boxes of each image's label file, found where darknet looks for it (no file: no boxes, a negative)."""
    truths = []
    for image in images:
        path = Path(label_path(str(image), flavor))
        if not path.is_file():
            truths.append(np.zeros((0, 5)))
            continue
        data = path.read_bytes()[:_MAX_LABEL_BYTES + 1]
        if len(data) > _MAX_LABEL_BYTES:
            raise _label_problem(path, 1, "the file is over 10 MB: not a label file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise _label_problem(path, line, f"bytes that are not UTF-8 text ({exc.reason})") from None
        truths.append(parse_labels(text, path, classes))
    return truths


def _finite(values: Sequence[Any], where: str) -> list[float]:
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise StepError(f"{where}: darknet wrote a number that is not finite ({values})",
                        fix="the weights are broken (nan): train again, or use an earlier checkpoint")
    return out


def parse_json_detections(text: str, count: int, classes: int, where: str = "dets.json") -> list[np.ndarray]:
    """AlexeyAB/hank-ai ``-out`` JSON (one object per image, ``frame_id`` 1..N in the order typed) as per-image
    (m, 6) arrays ``class score x0 y0 x1 y1`` (relative corners)."""
    try:
        frames = json.loads(text)
    except ValueError as exc:
        raise StepError(f"{where}: darknet's JSON does not parse ({exc})",
                        fix="see darknet's output above; the run may have been cut short") from None
    dets: list[list] = [[] for _ in range(count)]
    for frame in frames if isinstance(frames, list) else []:
        k = int(frame.get("frame_id", 0)) - 1
        if not 0 <= k < count:
            raise StepError(f"{where}: frame_id {k + 1} is not one of the {count} images typed", fix="report it")
        for obj in frame.get("objects") or []:
            box = obj.get("relative_coordinates") or {}
            cls = int(obj.get("class_id", -1))
            if not 0 <= cls < classes:
                raise StepError(f"{where}: class_id {cls} outside 0..{classes - 1}",
                                fix="the cfg's classes= and obj.data's classes= must agree")
            x, y, w, h, score = _finite([box.get("center_x"), box.get("center_y"), box.get("width"),
                                         box.get("height"), obj.get("confidence")], where)
            dets[k].append((cls, score, x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return [np.array(d, dtype=float).reshape(-1, 6) for d in dets]


def parse_voc_results(folder: Path, prefix: str, names: Sequence[str],
                      sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """pjreddie's ``detector valid`` files (``PREFIXNAME.txt``: ``id score x0 y0 x1 y1``, pixels from 1) as
    per-image arrays like `parse_json_detections`' (the ids are the scratch links' indices)."""
    dets: list[list] = [[] for _ in sizes]
    for cls, name in enumerate(names):
        path = folder / f"{prefix}{name}.txt"
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            words = line.split()
            if len(words) != 6 or not words[0].isdigit() or int(words[0]) >= len(sizes):
                raise StepError(f"{path}:{number}: not `id score x0 y0 x1 y1`: {line[:80]!r}", fix="report it")
            k = int(words[0])
            score, x0, y0, x1, y1 = _finite(words[1:], f"{path}:{number}")
            w, h = sizes[k]
            dets[k].append((cls, score, (x0 - 1) / w, (y0 - 1) / h, (x1 - 1) / w, (y1 - 1) / h))
    return [np.array(d, dtype=float).reshape(-1, 6) for d in dets]


def _link_images(images: Sequence[Path], scratch: Path) -> list[Path]:
    links = []
    for k, image in enumerate(images):
        link = scratch / f"{k:06d}{image.suffix.lower()}"
        os.symlink(image, link)
        links.append(link)
    return links


def _scratch_data(scratch: Path, links: Sequence[Path], classes: int) -> Path:
    """An obj.data of our own for darknet: valid= the links, results= the scratch folder, and names ``c0``, ``c1``,
    ...: the user's class names never reach darknet's JSON (AlexeyAB writes a name's quote unescaped) or
    pjreddie's results file names."""
    (scratch / "results").mkdir()
    (scratch / "valid.txt").write_text("".join(f"{p}\n" for p in links))
    (scratch / "names.txt").write_text("".join(f"c{k}\n" for k in range(classes)))
    data = scratch / "eval.data"
    data.write_text(f"classes={classes}\nvalid={scratch / 'valid.txt'}\nnames={scratch / 'names.txt'}\n"
                    f"results={scratch / 'results'}\n")
    return data


def predict_all(*, darknet: Path, cfg: Path, weights: Path, images: Sequence[Path], classes: int, cwd: Path,
                reporter: Reporter, flavor: str, env: Optional[dict] = None) -> list[np.ndarray]:
    """darknet's detections (score >= 0.005) on `images`, one process: per-image arrays ``class score x0 y0 x1 y1``."""
    scratch = Path(tempfile.mkdtemp(prefix="darknet-eval-"))
    try:
        links = _link_images(images, scratch)
        if flavor == "pjreddie":
            listed = _padded_for_pjreddie(links)
            data = _scratch_data(scratch, listed, classes)
            return _predict_pjreddie(darknet, data, cfg, weights, listed, classes, cwd, reporter, env)[:len(links)]
        data = _scratch_data(scratch, links, classes)
        out = scratch / "dets.json"
        (scratch / "annotated").mkdir()
        result, output, _, _ = detect_prompt(darknet, data, cfg, weights, links, DETECT_THRESH, cwd,
                                              scratch / "annotated", reporter, env, flavor, ["-out", str(out)],
                                              stems=[p.stem for p in links])
        if result.returncode not in (0, None) or result.signal or not out.is_file():
            raise darknet_failure("darknet's detections for the evaluation failed", output, result, flavor,
                        [str(darknet), "detector", "test"])
        return parse_json_detections(out.read_text(errors="replace"), len(links), classes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# pjreddie's `detector valid` loads paths[0..3] for its 4 loader threads before it looks at the list's length
# (examples/detector.c, validate_detector): a list of fewer than 4 images aborts it ("basic_string null").
PJREDDIE_LOADERS = 4


def _padded_for_pjreddie(links: list[Path]) -> list[Path]:
    """The list pjreddie is given: the images, the last one repeated up to its 4 loaders (their rows are dropped)."""
    return links + [links[-1]] * max(0, PJREDDIE_LOADERS - len(links))


def _predict_pjreddie(darknet, data, cfg, weights, links, classes, cwd, reporter, env) -> list[np.ndarray]:
    """pjreddie's ``detector valid`` on our obj.data: ``results/det_cK.txt`` per class."""
    argv = [str(darknet), "detector", "valid", str(data), str(cfg), str(weights), "-out", "det_"]
    chunks: list[str] = []

    def on_text(text: str) -> None:
        chunks.append(text)
        reporter.progress(f"eval: predicting {len(links)} images")

    result = runner.run(argv, cwd=cwd, log_path=None, on_text=on_text, watchdog=runner.Watchdog(silence_s=600.0),
                        env=display_free_env(env))
    output = "".join(chunks)
    if result.returncode not in (0, None) or result.signal:
        raise darknet_failure("darknet detector valid failed", output, result, "pjreddie", argv)
    sizes = [image_size(p) or (1, 1) for p in links]
    return parse_voc_results(data.parent / "results", "det_", [f"c{k}" for k in range(classes)], sizes)


@dataclass
class Evaluation:
    """What `%yolo eval` binds: the tables (pandas), the averages, and where its views were saved.

    Attributes:
        per_class: class, images, gt, tp, fp, fn, precision, recall, f1 (at `thresh` and `iou`), ap50 (darknet's
            AP@0.50), ap50_95 (COCO's).
        map50: darknet's mAP@0.50 (the mean over every class). map50_95: COCO's mAP@0.50:0.95.
        confusion: rows the true class, columns the predicted one, plus ``background``.
        curves: class, confidence, precision, recall, f1 (one row per class and confidence step).
        images: image, gt, detections, tp, fp, fn per validation image, worst (fp + fn) first.
        detections: every detection darknet gave (score >= 0.005): image, class, name, confidence, x0 y0 x1 y1.
    """

    per_class: Any
    map50: float
    map50_95: float
    confusion: Any
    curves: Any
    images: Any
    detections: Any
    thresh: float
    iou: float
    names: list[str]
    seconds: float = 0.0
    folder: Optional[Path] = None
    saved: dict = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list, repr=False)  # the validation images, in the list's order
    truths: list[np.ndarray] = field(default_factory=list, repr=False)  # their boxes (the mosaic draws them)

    def summary(self) -> str:
        return (f"mAP@0.50 {100 * self.map50:.2f}%, mAP@0.50:0.95 {100 * self.map50_95:.2f}% on "
                f"{len(self.images)} validation image(s), {len(self.names)} class(es)"
                + (f"; views in {self.folder}" if self.folder else ""))

    def __repr__(self) -> str:  # the tables are attributes to look at one by one, not a wall of text
        return f"Evaluation({self.summary()})"


def _per_image(truths, kept, iou) -> tuple[list[dict], dict[int, tuple[int, int]]]:
    """Per-image counts at the confidence threshold, and the per-class (tp, fp) sums."""
    rows: list[dict] = []
    counts: dict[int, tuple[int, int]] = {}
    for gt, det in zip(truths, kept):
        taken = metrics.match_image(gt, det, iou)
        for cls, t in zip(det[:, 0].astype(int), taken):
            tp, fp = counts.get(cls, (0, 0))
            counts[cls] = (tp + (t >= 0), fp + (t < 0))
        tp = int((taken >= 0).sum())
        rows.append({"gt": len(gt), "detections": len(det), "tp": tp, "fp": len(det) - tp, "fn": len(gt) - tp})
    return rows, counts


def score(truths: Sequence[np.ndarray], dets: Sequence[np.ndarray], names: Sequence[str], images: Sequence[Path],
          *, thresh: float = 0.25, iou: float = 0.5, points: int = 0) -> Evaluation:
    """The `Evaluation` of detections against ground truth (pure: arrays in, dataframes out)."""
    import pandas as pd

    classes = len(names)
    ranked50 = metrics.rank_darknet(truths, dets, classes, 0.5)
    ap50 = metrics.darknet_ap(ranked50, classes, points)
    coco = metrics.coco_ap(truths, dets, classes)
    kept = [d[d[:, 1] >= thresh] for d in (d[np.argsort(-d[:, 1], kind="stable")] for d in dets)]
    image_rows, counts = _per_image(truths, kept, iou)
    per_class = []
    for c, name in enumerate(names):
        n_gt = int(ranked50.gt_per_class[c])
        tp, fp = counts.get(c, (0, 0))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / n_gt if n_gt else 0.0
        per_class.append({"class": name, "images": sum(bool((g[:, 0] == c).any()) for g in truths), "gt": n_gt,
                          "tp": int(tp), "fp": int(fp), "fn": n_gt - int(tp), "precision": p, "recall": r,
                          "f1": 2 * p * r / (p + r) if p + r else 0.0, "ap50": float(ap50[c]),
                          "ap50_95": float(np.nanmean(coco[c])) if not np.isnan(coco[c]).all() else float("nan")})
    labels = list(names) + ["background"]
    matrix = metrics.confusion(truths, kept, classes, iou)
    confusion = pd.DataFrame(matrix, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))
    ranked = ranked50 if iou == 0.5 else metrics.rank_darknet(truths, dets, classes, iou)
    curve = metrics.curves(ranked, classes)
    curves = pd.DataFrame([{"class": names[c], "confidence": float(x), "precision": curve[c, 0, j],
                            "recall": curve[c, 1, j], "f1": curve[c, 2, j]}
                           for c in range(classes) for j, x in enumerate(metrics.CONFIDENCES)])
    table = pd.DataFrame(image_rows)
    table.insert(0, "image", [str(p) for p in images])
    table = table.assign(errors=table["fp"] + table["fn"]).sort_values(["errors", "image"], ascending=[False, True],
                                                                         kind="stable")
    rows = [{"image": str(images[k]), "class": int(d[0]), "name": names[int(d[0])], "confidence": d[1],
             "x0": d[2], "y0": d[3], "x1": d[4], "y1": d[5]} for k, det in enumerate(dets) for d in det]
    detections = pd.DataFrame(rows, columns=["image", "class", "name", "confidence", "x0", "y0", "x1", "y1"])
    with_gt = ~np.isnan(coco).all(axis=1)
    return Evaluation(per_class=pd.DataFrame(per_class), map50=float(ap50.mean()) if classes else 0.0,
                      map50_95=float(np.nanmean(coco[with_gt])) if with_gt.any() else 0.0, confusion=confusion,
                      curves=curves, images=table.drop(columns="errors").reset_index(drop=True),
                      detections=detections, thresh=thresh, iou=iou, names=list(names), paths=list(images),
                      truths=list(truths))


def valid_images(data: Path) -> list[Path]:
    """The images of obj.data's ``valid=`` list (``train=`` when there is none, as darknet does)."""
    values = objdata_values(data)
    listed = values.get("valid") or values.get("train")
    if not listed:
        raise StepError(f"{data} names no valid= (or train=) list", fix="add `valid = valid.txt` (see %yolo data)",
                        problems=[Problem("missing-file", "no validation list in obj.data", file=str(data))])
    return resolve_images(Path(listed).expanduser() if Path(listed).expanduser().is_absolute()
                          else data.parent / listed)


def evaluate(*, darknet: Path | str, data: Path, cfg: Path, weights: Path, thresh: float = 0.25, iou: float = 0.5,
             cwd: Optional[Path] = None, reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
             env: Optional[dict] = None) -> Evaluation:
    """Evaluate `weights` on obj.data's validation list: darknet predicts (`predict_all`), we match (`score`).

    Args:
        thresh: the confidence above which a detection counts for TP/FP/FN, the confusion matrix and the images.
        iou: the IoU a detection needs to count as a true positive there (AP50 and mAP@0.50 are always at 0.50).
    """
    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = model_files(darknet, data, cfg, weights)
    flavor = flavor or darknet_flavor(darknet_path)
    for name, value in (("thresh", thresh), ("iou", iou)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise StepError(f"{name}={value} is not a number in 0..1", fix=f"e.g. {name}=0.5")
    names = names_from_data(data_path)
    if not names:
        raise StepError(f"{data_path} names no class names file that exists (names=)",
                        fix="give obj.data a names= file with one class per line")
    _check_names(names)
    images = valid_images(data_path)
    truths = read_ground_truth(images, len(names), flavor)
    check_weights_file(cfg_path, weights_path)
    started = time.monotonic()
    dets = predict_all(darknet=darknet_path, cfg=cfg_path, weights=weights_path, images=images,
                       classes=len(names), cwd=Path(cwd).expanduser().resolve() if cwd else Path.cwd(),
                       reporter=reporter, flavor=flavor, env=env)
    result = score(truths, dets, names, images, thresh=thresh, iou=iou)
    result.seconds = time.monotonic() - started
    reporter.progress(f"eval: {len(images)} images in {result.seconds:.1f} s", final=True)
    return result


def checkpoint_scorer(**model: Any) -> Callable[[Path], tuple[dict, Any]]:
    """For `inference.evaluate_checkpoints`: a function that scores one weights file with `evaluate` (`model`: its
    other arguments: darknet, data, cfg, cwd, reporter), returning the checkpoint table's row (with ``map50_95``)
    and the per-class AP rows."""
    return lambda weights: _checkpoint_row(evaluate(weights=weights, **model), Path(weights))


def _checkpoint_row(ev: "Evaluation", weights: Path) -> tuple[dict, Any]:
    """The checkpoint table's row of one evaluation (counts summed over the classes) and its per-class AP rows."""
    tp, fp, fn = (int(ev.per_class[k].sum()) for k in ("tp", "fp", "fn"))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    row = {"map": ev.map50, "map50_95": ev.map50_95, "precision": precision, "recall": recall,
           "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
           "tp": tp, "fp": fp, "fn": fn}
    ap = ev.per_class.rename(columns={"class": "name", "ap50": "ap"})[["name", "ap", "ap50_95", "tp", "fp", "fn",
                                                                       "gt"]]
    ap.insert(0, "checkpoint", weights.name)
    return row, ap


def _check_names(names: Sequence[str]) -> None:
    """Class names go into the tables, the views and TensorBoard's tags (never to darknet: it gets c0, c1, ...):
    a control character in one is refused."""
    for k, name in enumerate(names, 1):
        if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
            raise StepError(f"class name {k} {name!r} has a control character",
                            fix="rename the class in the names file (letters, digits, '_' and '-' are safe)")
