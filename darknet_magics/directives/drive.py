"""`drive`: Google Drive in Colab (a local folder elsewhere) as ``{drive}``, space-free."""
from __future__ import annotations

from pathlib import Path

from ..setup.drive import mount_drive
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done

SPEC = Spec("drive", "darknet",
            "Mount Google Drive (in Colab) or take a local folder as the drive (elsewhere). {drive} becomes its "
            "MyDrive folder, through a space-free link when the real path has spaces (darknet cannot read them).",
            positionals=(Pos("PATH", "Colab: the mount point (default /content/drive); elsewhere: the folder", False),),
            options=(Opt("alias", "path", "where to put the space-free link to a drive whose path has spaces"),),
            establishes=("drive", "workspace"), example="drive /content/drive", order=20)


def _default_workspace(ctx: Context, root: Path) -> None:
    # The default workspace; created by the first step that writes into it (a `workspace` line may follow).
    if ctx.session.workspace is None:
        ctx.session.workspace = root / "darknet"


def run(step: Step, ctx: Context) -> Done:
    alias = step.get("alias")
    info = mount_drive(step.args.get("PATH"), ctx.reporter, alias_dir=ctx.path(alias) if alias else None)
    ctx.session.drive = info
    ctx.session.drive_root = Path(info.root)
    _default_workspace(ctx, Path(info.root))
    return Done(f"{{drive}} = {info.root}; {{workspace}} = {ctx.session.workspace}", info)


def preview(step: Step, ctx: Context) -> list[str]:
    path = step.args.get("PATH")
    if ctx.session.platform == "colab":
        mount = path or "/content/drive"
        root = Path(mount) / "MyDrive" if "MyDrive" not in mount and "My Drive" not in mount else Path(mount)
        lines = [f"google.colab.drive.mount({mount!r})"]
    else:
        if not path:
            return ["error: outside Colab, `drive PATH` needs a local folder"]
        root = ctx.path(path)
        lines = [f"use the local folder {str(root)!r} as the drive"]
    ctx.session.drive_root = root
    _default_workspace(ctx, root)
    return lines + [f"{{drive}} = {root}", f"{{workspace}} = {ctx.session.workspace}"]
