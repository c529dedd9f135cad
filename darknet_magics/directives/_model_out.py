"""Shared by test/map/video/export: darknet's own flags from ``args="..."`` and where results go."""
from __future__ import annotations

import shlex
from pathlib import Path

from ..setup.binary import check_darknet_args, darknet_flavor
from ..errors import StepError
from ..media import IMAGE_SUFFIXES
from ..language import Opt, Pos, Step
from ..session import Context
from ._runs import newest_weights, runs_root


def model_positionals(weights: str, *more: Pos) -> tuple[Pos, ...]:
    """DATA CFG WEIGHTS, the model every model-out line runs, then what the line reads (an image, a video)."""
    return (Pos("DATA", "obj.data"), Pos("CFG", ".cfg"), Pos("WEIGHTS", weights), *more)


THRESH = Opt("thresh", "float", "confidence threshold", default=0.25)
ARGS = Opt("args", "str", "darknet's own flags, checked per flavor")
BIN = Opt("bin", "path", "the darknet binary")


def darknet_args(step: Step, ctx: Context, command: str) -> list[str]:
    """``args="-points 0 -mAP_epochs 2"`` as argv words (split like a shell would, never run by one), checked
    against the flags this darknet's flavor has."""
    text = step.get("args")
    if not text:
        return []
    try:
        words = shlex.split(str(text))
    except ValueError as exc:
        raise StepError(f"args={text!r}: {exc}", fix='quote the whole value: args="-points 0"') from None
    errors = check_darknet_args(darknet_flavor(ctx.darknet_binary(step)), command, words)
    if errors:  # the line is wrong, not the run: name the line and the directive
        raise step.error("; ".join(errors), fix=f"fix args= of %yolo {command} (see docs/directives/yolo-{command}.md)")
    return words


# What to do about each input a model-out line names, when it is not there.
_FIXES = {
    "DATA": "write it with `%yolo data` (or give the path of your obj.data)",
    "CFG": "write it with `%yolo cfg` (or give the path of your .cfg)",
    "WEIGHTS": "give a .weights file (or, for map, a run's backup folder)",
    "IN": "give the path of a video file (quote a path with spaces)",
    "names": "give the class names file (obj.names, as obj.data's names= says)",
}


def require_inputs(step: Step, ctx: Context, *names: str, folder_ok: tuple[str, ...] = ()) -> dict[str, Path]:
    """The paths of the positionals/options `names` of this line, each checked to exist before darknet starts.

    A missing one is a DirectiveError naming the line, the directive and the fix (the user typed it), not a
    StepError from deep in a run. Names in `folder_ok` may be folders (map's WEIGHTS); the others must be files.
    """
    paths: dict[str, Path] = {}
    for name in names:
        text = step.args.get(name) if name in step.args else step.get(name)
        if text is None:
            continue
        path = ctx.path(text)
        label = name if name.isupper() else f"{name}="
        if not path.exists():
            fix = _FIXES.get(name, "check the path") + (_where_weights_are(ctx) if name == "WEIGHTS" else "")
            raise step.error(f"{label} {path} does not exist", fix=fix)
        if path.is_dir() and name not in folder_ok:
            raise step.error(f"{label} {path} is a folder, not a file", fix=_FIXES.get(name, "give a file"))
        paths[name] = path
    return paths


def _where_weights_are(ctx: Context) -> str:
    """Where training saved weights, for a missing WEIGHTS's fix: each run keeps its own (obj.data's backup= is
    not where `%yolo train` writes)."""
    folder, weights = newest_weights(ctx)
    if weights is not None:
        return f"; the newest run saved {weights} (its weights folder: {folder})"
    if folder is not None:
        return f"; the newest run saved no weights yet in {folder}"
    return f"; `%yolo train` saves each run's weights in {runs_root(ctx)}/NAME/backup (no run there yet)"


def require_video(step: Step, path: Path) -> None:
    """An image given to %yolo video is a mistake of the line (darknet's demo would fail on it after loading)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise step.error(f"IN {path} is an image, not a video",
                         fix="use %yolo test for images (a file, a folder, a list or a glob)")


def results_folder(step: Step, ctx: Context, what: str) -> Path:
    """out= or, by default, WORKSPACE/what (the run's folder on the drive when the workspace is there), else ./what."""
    out = step.get("out")
    if out:
        return ctx.path(out)
    workspace = getattr(ctx.session, "workspace", None)
    return (Path(workspace) if workspace else Path.cwd()) / what
