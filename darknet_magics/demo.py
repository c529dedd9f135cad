"""The end-to-end demo: execute examples/quickstart.ipynb in a real kernel and write an HTML report of it.

``python -m darknet_magics demo [--out DIR] [--iterations N]``: a fresh folder, a tiny synthetic dataset on a
local "drive", the quickstart notebook run top to bottom by a Jupyter kernel (nbclient + ipykernel) with the
folder as its working directory, then ``DIR/quickstart.ipynb`` (executed) and ``DIR/report.html`` (the same,
as a self-contained page with its charts). Outside Colab the notebook trains with the installed darknet
(Debian's ``darknet`` package), or builds ``DARKNET_SOURCE`` with our own clone/make when that is set.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

from .errors import DarknetMagicsError
from .output.logs import parse_log
from .view.report_html import write_report
from .synth import DEMO_CFG, DEMO_DATASET, make_dataset

NOTEBOOK_NAME = "quickstart.ipynb"
MARKER = ".darknet-magics-demo"  # a folder holding this file is ours to clear on the next run
DRIVE_DIR = "demo-drive"  # the notebook's local stand-in for Google Drive (see its Parameters cell)
DATASET_DIR = Path(DRIVE_DIR) / "datasets" / "boxes"
CELL_TIMEOUT_S = 3600  # a guard against a hung kernel, not a time limit on training


def find_notebook() -> Path:
    """The quickstart notebook: ``examples/`` of the checkout this package runs from."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "examples" / NOTEBOOK_NAME, here / "examples" / NOTEBOOK_NAME):
        if candidate.is_file():
            return candidate
    raise DarknetMagicsError(f"cannot find examples/{NOTEBOOK_NAME} next to {here}",
                             fix="run the demo from a checkout of the repository (pip install -e .)")


def fresh_folder(out: Path) -> Path:
    """Create `out` empty. An existing folder is cleared only when an earlier demo made it (it has MARKER)."""
    out = Path(out).expanduser().resolve()
    if out.exists():
        if not out.is_dir():
            raise DarknetMagicsError(f"{out} exists and is not a folder", fix="give another --out")
        if any(out.iterdir()):
            if not (out / MARKER).exists():
                raise DarknetMagicsError(f"{out} is not empty and was not made by the demo",
                                         fix="give a new or empty folder with --out")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python -m darknet_magics demo`; the next demo run clears this folder\n")
    return out


def inject_parameters(nb: Any, values: dict[str, Any]) -> Any:
    """Insert a cell that sets `values` right after the cell tagged ``parameters`` (papermill's convention)."""
    import nbformat

    source = "# injected by the demo\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    for index, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            nb.cells.insert(index + 1, cell)
            return nb
    raise DarknetMagicsError("the notebook has no cell tagged `parameters`", fix="tag the Parameters cell")


def kernel_env() -> dict[str, str]:
    """Our environment, with this package importable in the kernel even when it is not installed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets a debugpy warning in the kernel's stderr
    return env


def execute_notebook(nb: Any, cwd: Path) -> Optional[BaseException]:
    """Run every cell in a fresh python3 kernel (working in `cwd`); returns the cell error, if one stopped it."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=kernel_env())
    except CellExecutionError as exc:
        return exc
    return None


def latest_run_log(out: Path) -> Optional[Path]:
    """The newest ``runs/*/train.log`` the notebook wrote under `out`."""
    logs = [p for p in out.rglob("train.log") if p.parent.parent.name == "runs"]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def summarize(log: Optional[Path]) -> str:
    """``trained N iterations (final avg loss X) in S s`` from the run's log (and run.json for the time)."""
    if log is None:
        return "no training log was written"
    its = parse_log(log).iterations
    text = f"trained {len(its)} iterations"
    if len(its) and "avg_loss" in its.columns:
        value = float(its["avg_loss"].iloc[-1])
        text += f" (final avg loss {value:.4g})" if not math.isnan(value) else " (final avg loss nan)"
    try:
        sessions = json.loads((log.parent / "run.json").read_text()).get("sessions", [])
        seconds = sum(float(s.get("seconds") or 0) for s in sessions)
        if seconds:
            text += f" in {seconds:.1f} s"
    except (OSError, ValueError):
        pass
    return text + f"; log: {log}"


def run_demo(out: Path, iterations: int = DEMO_CFG["max_batches"]) -> int:
    """Run the quickstart notebook for real and write ``out/report.html``; returns a process exit code."""
    try:
        import nbformat
    except ImportError:
        print("the demo needs nbclient, nbformat, nbconvert and ipykernel: pip install -e '.[test]'",
              file=sys.stderr)
        return 2
    if iterations < 1:
        raise DarknetMagicsError(f"--iterations {iterations}: must be at least 1", fix="e.g. --iterations 40")
    started = time.monotonic()
    source = find_notebook()
    out = fresh_folder(out)
    print(f"demo folder: {out}")
    dataset = make_dataset(out / DATASET_DIR, **DEMO_DATASET)
    print(f"dataset: {len(dataset.images)} images, {dataset.boxes} boxes in {dataset.folder}")
    darknet = os.environ.get("DARKNET_SOURCE") or shutil.which("darknet")
    print(f"darknet: {'build of ' + darknet if os.environ.get('DARKNET_SOURCE') else darknet or 'NOT FOUND'}")

    nb = inject_parameters(nbformat.read(str(source), as_version=4), {"ITERATIONS": int(iterations)})
    print(f"executing {source.name} in a python3 kernel ({len(nb.cells)} cells) ...", flush=True)
    error = execute_notebook(nb, out)
    executed = out / NOTEBOOK_NAME
    nbformat.write(nb, str(executed))
    report = write_report(nb, out / "report.html", title="darknet_magics quickstart")
    seconds = time.monotonic() - started
    print(f"executed notebook: {executed}")
    print(summarize(latest_run_log(out)))
    print(summarize_eval(out))
    if error is not None:
        print(f"the notebook stopped with an error (shown in the report):\n{_short(error)}", file=sys.stderr)
        print(f"report: {report}")
        return 1
    print(f"demo finished in {seconds:.0f} s")
    print(f"report: {report}")
    return 0


def summarize_eval(out: Path) -> str:
    """``evaluated: mAP@0.50 X%, mAP@0.50:0.95 Y%`` from the newest ``eval/*/per_class.csv`` the notebook wrote
    (darknet's mAP is the mean AP50 over every class; COCO's the mean AP50-95 over those with ground truth)."""
    import pandas as pd

    tables = sorted(out.rglob("eval/*/per_class.csv"), key=lambda p: p.stat().st_mtime)
    if not tables:
        return "no evaluation was written"
    table = pd.read_csv(tables[-1])
    return (f"evaluated: mAP@0.50 {100 * table['ap50'].mean():.1f}%, mAP@0.50:0.95 "
            f"{100 * table['ap50_95'].mean():.1f}% on {len(table)} class(es); views in {tables[-1].parent}")


def _short(error: BaseException, lines: int = 25) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return "\n".join(text[-lines:])
