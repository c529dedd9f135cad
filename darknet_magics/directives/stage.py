"""`stage`: a dataset from the drive onto fast local disk, once per VM."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..data.staging import plan_stage, stage

SPEC = Spec("stage", "darknet",
            "Copy (or unpack) a dataset from the drive onto fast local disk; skipped when the local copy is complete.",
            positionals=(Pos("SRC", "a folder, an archive (.tar/.tar.gz/.tgz/.tar.xz/.zip: the type is read from its "
                                    "content), or an http(s) URL of one (kept in {workspace}/downloads)"),),
            options=(Opt("into", "path", "the local folder to put it in (default {local}/data): {dataset} = DIR/NAME"),
                     Opt("pack", "onoff", "write one archive of the folder to the drive on first use", default="off")),
            establishes=("dataset",), example="stage {drive}/datasets/helmets.zip", order=70)


def _into(step: Step, ctx: Context) -> Path:
    """The local folder the dataset lands in (like `cp -r SRC DIR`): into=, else {local}/data."""
    into = step.get("into")
    return ctx.path(into) if into else ctx.local() / "data"


def _source(step: Step, ctx: Context) -> str | Path:
    src = step.args["SRC"]
    return src if re.match(r"https?://", src) else ctx.path(src)


def _downloads(ctx: Context) -> Optional[Path]:
    """A URL's archive is kept on the drive, so that the next VM unpacks it without downloading again."""
    return ctx.session.workspace / "downloads" if ctx.session.workspace else None


def run(step: Step, ctx: Context) -> Done:
    result = stage(_source(step, ctx), _into(step, ctx), pack=step.get("pack"), reporter=ctx.reporter,
                   downloads=_downloads(ctx))
    ctx.session.dataset = Path(result.path)
    return Done(f"{result.action} {result.files} files into {result.path}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    plan = plan_stage(_source(step, ctx), _into(step, ctx), pack=step.get("pack"), downloads=_downloads(ctx))
    ctx.session.dataset = plan.target
    return plan.describe() + [f"{{dataset}} = {plan.target}"]
