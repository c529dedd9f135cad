"""`clone`: darknet's source (pjreddie, AlexeyAB, hank-ai) at a pinned ref."""
from __future__ import annotations

import shlex
from pathlib import Path

from ..setup.clone import clone, clone_commands
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done

SPEC = Spec("clone", "darknet",
            "Get darknet's source at a pinned ref (git clone, or fetch and checkout when the folder exists).",
            positionals=(Pos("URL", "repository URL or local path (default https://github.com/AlexeyAB/darknet)", False),),
            options=(Opt("ref", "str", "branch, tag or commit to check out"),
                     Opt("into", "path", "where to clone (default {local}/darknet)")),
            establishes=("darknet",), example="clone https://github.com/AlexeyAB/darknet ref=master", order=50)


def _target(step: Step, ctx: Context) -> Path:
    into = step.get("into")
    return ctx.path(into) if into else ctx.local() / "darknet"


def run(step: Step, ctx: Context) -> Done:
    result = clone(step.args.get("URL"), step.get("ref"), _target(step, ctx), ctx.reporter)
    ctx.session.clone = result
    ctx.session.darknet_dir = Path(result.path)
    return Done(f"{result.action} {result.path} at {result.commit[:12]}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    into = _target(step, ctx)
    ctx.session.darknet_dir = into
    return [" ".join(shlex.quote(str(a)) for a in argv)
            for argv in clone_commands(step.args.get("URL"), step.get("ref"), into)]
