"""`make`: patch the Makefile (or configure CMake) and build darknet, from the build cache when it can."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..setup.build import BuildPlan, execute_build, plan_build
from ..errors import DarknetMagicsError, StepError
from ..language import Opt, Spec, Step
from ..session import Context, Done

MAKE_FLAGS = ("GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "DEBUG")

SPEC = Spec("make", "darknet",
            "Patch the Makefile's flags (or configure CMake for hank-ai/darknet) and build darknet, restoring the "
            "binary from the workspace's build cache when this exact build was made before.",
            options=tuple(Opt(f, "bool01", f"set {f}= in the Makefile") for f in MAKE_FLAGS) + (
                Opt("ARCH", "arch", "GPU architectures: auto (the GPU found by runtime) or compute capabilities like 75,86"),
                Opt("jobs", "int", "parallel compile jobs (default: number of cores)"),
                Opt("cache", "onoff", "use the build cache in {workspace}/cache (default: on when a workspace is set)"),
                Opt("ccache", "onoff", "compile through ccache, its cache in $CCACHE_DIR or {workspace}/cache/ccache: "
                                       "a rebuild after a source change compiles only what changed (default: off)"),
                Opt("dir", "path", "the darknet source folder (default {darknet})")),
            establishes=("bin",), example="make GPU=1 CUDNN=1 CUDNN_HALF=1 OPENCV=1 ARCH=auto", order=60)


def _source(step: Step, ctx: Context) -> Path:
    source = step.get("dir") or ctx.session.darknet_dir
    if not source:
        raise StepError("make: no darknet source folder", fix="run `clone` first, or give make dir=PATH")
    return ctx.path(source)


def _cache_dir(step: Step, ctx: Context) -> Optional[Path]:
    workspace = ctx.session.workspace
    if not step.get("cache", workspace is not None):
        return None
    if workspace is None:
        raise StepError("make cache=on needs a workspace to keep the cache in",
                        fix="add a `workspace PATH` (or `drive`) line before `make`, or use cache=off")
    return workspace / "cache"


def _ccache_dir(ctx: Context) -> Optional[Path]:
    """$CCACHE_DIR where the environment sets it (ccache's own variable), else the workspace's, else ccache's."""
    if os.environ.get("CCACHE_DIR"):
        return Path(os.environ["CCACHE_DIR"])
    return ctx.session.workspace / "cache" / "ccache" if ctx.session.workspace is not None else None


def _plan(step: Step, ctx: Context) -> BuildPlan:
    flags = {k: step.options[k] for k in MAKE_FLAGS if k in step.options}
    # In Colab (root, apt, a fresh VM) missing OpenCV headers are installed; elsewhere the error says what to run.
    return plan_build(_source(step, ctx), flags=flags, arch=step.get("ARCH"), jobs=step.get("jobs"),
                      cache_dir=_cache_dir(step, ctx), runtime=ctx.runtime(),
                      install_opencv=ctx.session.platform == "colab", ccache=bool(step.get("ccache", False)),
                      ccache_dir=_ccache_dir(ctx))


def run(step: Step, ctx: Context) -> Done:
    plan = _plan(step, ctx)
    commit = ctx.session.clone.commit if ctx.session.clone is not None else None
    result = execute_build(plan, runtime=ctx.runtime(), reporter=ctx.reporter, commit=commit)
    ctx.session.build = result
    ctx.session.binary = Path(result.binary)
    return Done(f"{result.action}: {result.binary}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    source = _source(step, ctx)
    if not source.is_dir():
        # The `clone` line above has not run (a dry run): say what will be decided once the tree is there.
        flags = ", ".join(f"{k}={step.options[k]}" for k in MAKE_FLAGS if k in step.options)
        ctx.session.binary = source / "darknet"
        return [f"after the clone: patch {source}/Makefile ({flags or 'no flag changes'}) and make -j"
                f"{step.get('jobs') or 'N'}, or configure CMake for a hank-ai tree",
                f"build cache: {_cache_dir(step, ctx) or 'off'}", f"{{bin}} = {ctx.session.binary} (Makefile trees)"]
    try:
        plan = _plan(step, ctx)
    except DarknetMagicsError as err:
        ctx.session.binary = source / "darknet"
        return [f"error: {err}"]
    ctx.session.binary = plan.binary_guess
    return plan.describe() + [f"{{bin}} = {plan.binary_guess}"]
