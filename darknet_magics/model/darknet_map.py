"""darknet's own `detector map`: one weights file scored, or every checkpoint of a folder ranked (`%yolo map`).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..run import runner
from ..setup.binary import darknet_flavor, last_output
from ..output.judge import diagnose
from ..setup.runtime import nvidia_gpu_found
from ..errors import Problem, StepError
from ..report import Reporter
from ..train.record import RUN_JSON
from ..train.runs import weights_iteration
from .inputs import model_files, check_weights_file


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
    reporter = reporter or Reporter()
    darknet_path, data_path, cfg_path, weights_path = model_files(darknet, data, cfg, weights)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    flavor = flavor or darknet_flavor(darknet_path)
    if flavor == "pjreddie":
        raise _no_map_command()
    argv = _map_argv(flavor, darknet_path, data_path, cfg_path, weights_path, iou_thresh, points, extra_args)
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
        raise _no_map_command()
    maps = history.maps
    if not len(maps):
        maps = map_at_any_iou(output)
    if not len(maps):
        problems = diagnose(output, returncode=result.returncode, signal=result.signal, flavor=flavor,
                            command=argv, gpu_found=nvidia_gpu_found)
        raise StepError(f"darknet detector map gave no mAP ({result.describe()})",
                        fix=problems[0].fix if problems else None, problems=problems, details=last_output(output))
    report = MapReport(maps=maps, class_ap=history.class_ap, output=output)
    if show:
        reporter.dataframe(report.class_ap, title=report.summary())
    return report


def _no_map_command() -> StepError:
    """The error for a darknet without ``detector map`` (pjreddie's prints nothing and exits)."""
    return StepError(
        "this darknet has no `detector map` (pjreddie's darknet prints nothing and exits)",
        fix="use AlexeyAB's or hank-ai's darknet for %yolo map, or train with `map` on one of them",
        problems=[Problem("unsupported-command", "`detector map` is not a command of pjreddie's darknet",
                          fix="build AlexeyAB/darknet or hank-ai/darknet")])


def _map_argv(flavor: str, darknet_path: Path, data_path: Path, cfg_path: Path, weights_path: Path,
              iou_thresh: Optional[float], points: Optional[int], extra_args: Sequence[str]) -> list[str]:
    """``detector map``'s argv, with `extra_args` checked against the flags `flavor` knows."""
    from ..setup.binary import check_darknet_args

    argv = [str(darknet_path), "detector", "map", str(data_path), str(cfg_path), str(weights_path), "-dont_show"]
    if iou_thresh is not None:
        argv += ["-iou_thresh", str(float(iou_thresh))]
    if points is not None:
        argv += ["-points", str(int(points))]
    errors = check_darknet_args(flavor, "map", list(extra_args))
    if errors:
        raise StepError("; ".join(errors), fix="see the flags this darknet knows in docs/directives/yolo-map.md")
    return argv + list(extra_args)


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
    metric: str = "map"  # the column `best` is the highest of: map (mAP@0.50) or map50_95

    def summary(self) -> str:
        if self.best is None:
            return "no checkpoint gave a mAP"
        row = self.table.loc[self.table["path"] == str(self.best)].iloc[0]
        label = "mAP@0.50:0.95" if self.metric == "map50_95" else "mAP@0.50"
        return (f"best: {self.best.name} ({label} {100 * row[self.metric]:.2f}%) of {len(self.table)} "
                "checkpoint(s)")


def evaluate_checkpoints(darknet: Path | str, data: Path, cfg: Path, folder: Path, *, cwd: Optional[Path] = None,
                         reporter: Optional[Reporter] = None, flavor: Optional[str] = None,
                         iou_thresh: Optional[float] = None, points: Optional[int] = None,
                         extra_args: Sequence[str] = (), env: Optional[dict] = None,
                         scorer: Optional[Callable[[Path], tuple[dict, Any]]] = None) -> CheckpointReport:
    """``detector map`` on every weights file of `folder` (_1000, _2000, ..., _best, _last, _final).

    The iteration of ``_best``, ``_last`` and ``_final`` (not in their names) is read from the weights file's
    header (images seen / the cfg's batch, as darknet counts it). The table is shown with a chart (mAP, precision,
    recall, F1 by iteration, the best marked), and both are saved in the run's folder (`folder`, or its parent
    when `folder` is a run's backup folder): ``checkpoints.csv``, ``checkpoints.html`` and, where a notebook shows
    it, ``checkpoints.png``.

    `scorer` scores each checkpoint instead of ``detector map``: ``scorer(weights) -> (row, class_ap)``, the row
    with ``map50_95`` (`evaluate.checkpoint_scorer`: `%yolo eval`'s matching, on any flavor, pjreddie included);
    the best is then the file with the highest mAP@0.50:0.95.

    Returns:
        A `CheckpointReport`: `table` has iteration, tag, path, map, precision, recall, f1 (and avg_iou where
        printed), `class_ap` one row per (checkpoint, class), and `best` the file with the highest `metric`.
    """
    reporter = reporter or Reporter()
    files = checkpoint_files(Path(folder).expanduser())
    if not files:
        raise StepError(f"no checkpoint (NAME_1000.weights, NAME_best.weights, ...) in {folder}",
                        fix="give the run's folder or its backup folder (obj.data's backup=)")
    score = scorer if scorer is not None else _map_scorer(
        darknet=darknet, data=data, cfg=cfg, cwd=cwd, reporter=reporter, flavor=flavor, env=env,
        iou_thresh=iou_thresh, points=points, extra_args=extra_args)
    rows: list[dict] = []
    aps: list[Any] = []
    for k, (iteration, tag, path) in enumerate(files, 1):
        reporter.progress(f"map: checkpoint {k}/{len(files)}: {path.name}")
        if iteration is None:  # _best/_last/_final: the header says how far training was
            iteration = weights_iteration(path, Path(cfg))
        where = {"iteration": iteration, "tag": tag, "path": str(path)}
        try:
            row, ap = score(path)
        except StepError as exc:  # one bad checkpoint is said and left unranked: the others still are
            reporter.warn(f"{path.name}: {exc.args[0] if exc.args else exc}")
            rows.append({**where, "map": float("nan")})
            continue
        rows.append({**where, **row})
        aps.append(ap)
    result = _rank_checkpoints(rows, aps, metric="map50_95" if scorer is not None else "map", folder=folder,
                               tried=len(files))
    reporter.progress(f"map: {len(files)} checkpoint(s) evaluated", final=True)
    reporter.dataframe(result.table, title=result.summary())
    _show_and_save(result, checkpoint_run_dir(Path(folder).expanduser()), reporter)
    return result


def _map_scorer(**map_args: Any) -> Callable[[Path], tuple[dict, Any]]:
    """`evaluate_map` as a checkpoint scorer: darknet's own `detector map` of one weights file, its last mAP with
    the counts, and the class APs marked with the checkpoint's name."""

    def score(path: Path) -> tuple[dict, Any]:
        report = evaluate_map(weights=path, show=False, **map_args)
        row = _checkpoint_row(report)
        ap = report.class_ap.copy()
        ap.insert(0, "checkpoint", path.name)
        return row, ap

    return score


def _rank_checkpoints(rows: list[dict], aps: list[Any], *, metric: str, folder: Path, tried: int
                      ) -> CheckpointReport:
    """The checkpoints' table and class APs, the best by `metric`; an error when none gave a mAP."""
    import pandas as pd

    table = pd.DataFrame(rows)
    table["iteration"] = table["iteration"].astype("Int64")  # None for _best/_last/_final
    class_ap = pd.concat(aps, ignore_index=True) if aps else pd.DataFrame()
    scored = table.dropna(subset=["map"])
    if not len(scored):
        raise StepError(f"no checkpoint in {folder} gave a mAP ({tried} tried)",
                        fix="see the warnings above: each names its file and darknet's error")
    best = Path(scored.loc[scored[metric].idxmax(), "path"])
    return CheckpointReport(table=table, class_ap=class_ap, best=best, metric=metric)


def _checkpoint_row(report: MapReport) -> dict:
    """One checkpoint's scores in the table: the last mAP darknet printed with its counts."""
    last = report.maps.iloc[-1].to_dict()
    row = {"map": float(last.get("map50", float("nan")))}
    for key in ("precision", "recall", "f1", "avg_iou", "tp", "fp", "fn"):
        if key in last:
            row[key] = last[key]
    return row


def _show_and_save(result: CheckpointReport, run_dir: Path, reporter: Reporter) -> None:
    """Show the checkpoint chart and save the table and chart in `run_dir` (a read-only folder only warns)."""
    from ..view import live
    from ..fileio import atomic_write_text

    result.figure = live.checkpoint_figure(result.table, str(result.best), title=f"checkpoints of {run_dir.name}")
    bundle = live.show_figure(reporter, f"darknet-checkpoints:{run_dir}", result.figure,
                              f"checkpoint chart: {run_dir / 'checkpoints.html'}")
    try:
        atomic_write_text(run_dir / "checkpoints.csv", result.table.to_csv(index=False))
        png = (bundle or {}).get("image/png")
        # the PNG where a notebook shows the chart (as the training chart's chart.png), made once for both
        result.saved = live.write_figure(result.figure, run_dir, name="checkpoints", title=result.summary(),
                                         png=bundle is not None, png_data=base64.b64decode(png) if png else None)
    except OSError as exc:  # a read-only folder: the table and chart are still shown and returned
        reporter.warn(f"the checkpoint table and chart were not saved in {run_dir}: {exc}")


def checkpoint_run_dir(folder: Path) -> Path:
    """Where `evaluate_checkpoints` saves its table and chart: the run's folder (a backup folder's parent, when
    that parent holds the run's run.json), else the folder given."""
    return folder.parent if (folder.parent / RUN_JSON).is_file() and not (folder / RUN_JSON).is_file() else folder
