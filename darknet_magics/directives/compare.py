"""`%yolo compare`: runs side by side, avg loss and mAP on one chart by iteration, and a table."""
from __future__ import annotations

import glob
from pathlib import Path

from ..errors import DarknetMagicsError, StepError
from ..language import Pos, Spec, Step
from ..view.compare import compare_runs
from ..view.saved import show_figure
from ..session import Context, Done
from ..train.record import RUN_JSON
from ..train.runs import TrainingRun
from ._runs import find_run, first_line

SPEC = Spec("compare", "yolo", "Compare runs: their avg loss and mAP on one chart by iteration, and a table (best mAP "
            "and where, final loss, iterations, time).",
            positionals=(Pos("RUNS", "run names (variables), run folders, or globs such as {workspace}/runs/*",
                             many=True),),
            allows_as=True, example="%yolo compare {workspace}/runs/*", order=145)


def _runs(step: Step, ctx: Context) -> list[TrainingRun]:
    """The runs the words name; a glob's damaged folder is one warning line and the others are compared."""
    found: list[TrainingRun] = []
    skipped: list[str] = []
    for word in step.args["RUNS"].split("\n"):
        matches = sorted(glob.glob(str(ctx.path(word)))) if any(c in word for c in "*?[") else []
        if matches:
            for m in matches:
                if not (Path(m) / RUN_JSON).is_file():
                    continue
                try:
                    found.append(TrainingRun.load(Path(m)))
                except DarknetMagicsError as exc:
                    skipped.append(f"{Path(m).name}: {first_line(exc)}")
                    ctx.reporter.warn(f"skipped {skipped[-1]}")
        else:
            found.append(find_run(word, ctx, restore=False))
    if len(found) < 1:
        raise StepError(f"no runs match {step.args['RUNS']!r}" + (f" that can be read ({len(skipped)} damaged: "
                                                                   f"{'; '.join(skipped)[:600]})" if skipped else ""),
                        fix="give run names or folders under {workspace}/runs")
    return found


def run(step: Step, ctx: Context) -> Done:
    runs = _runs(step, ctx)
    figure, table = compare_runs(runs)
    ctx.reporter.dataframe(table, title=f"{len(runs)} run(s)")
    # plotly's mimetype and our HTML (view.saved.show_figure): drawn offline and untrusted, no CDN
    show_figure(ctx.reporter, f"darknet-compare:{step.lineno}:{len(runs)}", figure.to_plotly_json(),
                f"{len(runs)} runs compared")
    ctx.bind(step, table)
    return Done(f"compared {len(runs)} run(s)", table)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"read {step.args['RUNS']} (run.json and history.jsonl of each run; writes nothing)"]
