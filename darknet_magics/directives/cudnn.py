"""`cudnn`: install cuDNN from NVIDIA's tarball kept on the drive."""
from __future__ import annotations

from ..setup.cudnn import install_cudnn
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done

SPEC = Spec("cudnn", "darknet", "Install cuDNN from a tarball kept on the drive (skipped when that version is installed).",
            positionals=(Pos("TARBALL", "NVIDIA's cudnn-*.tar.xz / .tgz"),),
            options=(Opt("cuda", "path", "the CUDA tree to install into", default="/usr/local/cuda"),),
            example='cudnn "{drive}/cudnn-linux-x86_64-8.9.7.29_cuda12-archive.tar.xz"', order=40)


def run(step: Step, ctx: Context) -> Done:
    result = install_cudnn(ctx.path(step.args["TARBALL"]), ctx.path(step.get("cuda")), ctx.reporter)
    ctx.session.runtime = None  # the cuDNN version changed: probe again when needed
    return Done(f"cuDNN {result.version} {result.action}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    cuda = ctx.path(step.get("cuda"))
    return [f"unpack {step.args['TARBALL']!r} into {cuda}/include and {cuda}/lib64 (skipped when that version is "
            "installed)"]
