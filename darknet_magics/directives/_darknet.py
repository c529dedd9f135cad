"""Where darknet's `detector test/map` run."""
from __future__ import annotations

from pathlib import Path

from ..session import Context


def darknet_cwd(ctx: Context) -> Path:
    """darknet loads data/labels/*.png (box label glyphs) relative to its working folder, so a clone's binary runs
    in its clone; Debian's packaged one finds them itself."""
    source = ctx.session.darknet_dir
    if source and (source / "data" / "labels").is_dir():
        return source
    return Path.cwd()
