"""`%yolo show`: a picture or a video in the notebook (inline, or a link when it is too large), or downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import Problem, StepError
from ..data.formats import image_size  # our check that a file is an image before darknet sees it
from ..report import Reporter
from ..media import IMAGE_SUFFIXES, VIDEO_SUFFIXES


INLINE_VIDEO_LIMIT = 50 * 1024 * 1024  # an inline data: URL larger than this makes the notebook file unwieldy


def video_html(path: Path) -> str:
    """A <video> tag that plays `path` inline (as a data: URL, so it also works in Colab, where the kernel's
    files are not served to the browser)."""
    import base64
    import html

    kind = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogg": "video/ogg"}.get(
        path.suffix.lower(), "video/mp4")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<video controls width="640" title="{html.escape(path.name)}">'
            f'<source src="data:{kind};base64,{data}" type="{kind}"></video>')


def show(path: Path | str, *, reporter: Optional[Reporter] = None, download: bool = False) -> Path:
    """Show an image or a video file inline; in Colab, `download=True` also offers it for download."""
    from ..setup import colab

    reporter = reporter or Reporter()
    path = Path(path).expanduser()
    if not path.is_file():
        raise StepError(f"{path} does not exist", fix="give the path of an image or video file",
                        problems=[Problem("missing-file", f"not found: {path}", file=str(path))])
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if path.stat().st_size > INLINE_VIDEO_LIMIT:
            reporter.warn(f"{path.name} is {path.stat().st_size / 1e6:.0f} MB: too big to show inline; download it")
        else:
            reporter.html(f"video:{path}", video_html(path), text=f"video: {path}")
    elif suffix in IMAGE_SUFFIXES or image_size(path) is not None:
        reporter.image(str(path))
    else:
        raise StepError(f"{path.name} is neither an image nor a video we can show",
                        fix=f"images: {', '.join(IMAGE_SUFFIXES)}; videos: {', '.join(VIDEO_SUFFIXES)}")
    if download:
        if colab.in_colab():
            colab.download(str(path))
        else:
            reporter.info(f"download is offered in Colab only; the file is {path}")
    return path
