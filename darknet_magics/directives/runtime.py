"""`runtime`: what the machine has for darknet (GPU, driver, CUDA, cuDNN, OpenCV, compute capability)."""
from __future__ import annotations

from ..setup.runtime import PROBE_COMMANDS, probe_runtime
from ..language import Spec, Step
from ..session import Context, Done

SPEC = Spec("runtime", "darknet",
            "Report GPU, driver, CUDA, cuDNN, OpenCV and compute capability; warn when there is no GPU.",
            example="runtime", order=10)


def run(step: Step, ctx: Context) -> Done:
    info = probe_runtime()
    ctx.session.runtime = info
    ctx.reporter.table(info.rows())
    for warning in info.warnings:
        ctx.reporter.warn(warning)
    return Done(info.gpu_name or "no GPU", info)


def preview(step: Step, ctx: Context) -> list[str]:
    return ["probe: " + " ".join(argv) for argv in PROBE_COMMANDS]
