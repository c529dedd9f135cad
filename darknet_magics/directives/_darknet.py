"""Where darknet's `detector test/map/demo` run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..session import Context


def _has_glyphs(folder: Optional[Path]) -> bool:
    return bool(folder) and (folder / "data" / "labels").is_dir()


def darknet_cwd(ctx: Context, binary: Optional[Path] = None) -> Path:
    """darknet loads data/labels/*.png (box label glyphs) relative to its working folder, so a clone's binary runs
    in its clone: the folder of `binary` (the one this step runs, e.g. from bin=) when the glyphs are there, else
    the session's clone; Debian's packaged one finds them itself, so otherwise the current folder."""
    if binary is not None and _has_glyphs(Path(binary).parent):
        return Path(binary).parent
    source = ctx.session.darknet_dir
    if _has_glyphs(source):
        return source
    return Path.cwd()
