"""`%yolo cfg`: a training cfg from a stock one (classes, filters, max_batches, steps, any key)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..data.cfg import HEAD_KEYS, make_cfg_changes, resolve_template, write_cfg
from ..data.cfg_keys import NET_KEYS, sections_reading, unknown_keys
from ..language import Opt, Pos, Spec, Step
from ..data.objdata import train_images
from ..session import Context, Done
from ..untrusted import read_text


# What `%yolo cfg` writes where darknet reads it: [net] keys, the per-head keys it sets in every head, anchors.
_WRITABLE = NET_KEYS | HEAD_KEYS | {"anchors", "dataset_size"}


def _check(step: Step) -> None:
    raw = step.options["classes"]
    if raw.isdigit() and int(raw) < 1:
        raise step.error("classes= must be at least 1", "write classes=1 or more")
    if step.options.get("max_batches", "").lower() == "auto" and "data" not in step.options:
        raise step.error("max_batches=auto needs the dataset's size",
                         "add data=obj.data (its train list is counted), or give a number")
    if "epochs" in step.options and "max_batches" in step.options:
        raise step.error("epochs= and max_batches= both set the length of training",
                         "keep one: darknet counts max_batches (iterations of batch images)")
    if "epochs" in step.options and "data" not in step.options:
        raise step.error("darknet counts iterations (max_batches), not epochs: epochs= needs the number of training "
                         "images", "add data=obj.data (its train list is counted; max_batches = epochs x images / "
                         "batch), or give max_batches=")
    _refuse_unknown(step)


def _refuse_unknown(step: Step) -> None:
    """Keys no parser of darknet reads where `%yolo cfg` writes them are refused (darknet ignores them in
    silence: widht=64 leaves 416 px), with the near-match; `add=` lets the keys it names through."""
    own = {opt.name for opt in SPEC.options}
    added = {key.strip() for key in step.options.get("add", "").split(",") if key.strip()}
    given = [key for key in step.options if key not in own and key not in added]
    unknown = unknown_keys(given, _WRITABLE)
    if not unknown:
        return
    head = [u for u in unknown if sections_reading(u.key)]
    if head and len(unknown) == 1:
        key = head[0].key
        raise step.error(f"{key}= belongs in {sections_reading(key)}: `%yolo cfg` would write it in [net], where "
                         "darknet ignores it", f"edit those sections of the written cfg yourself (add={key} writes "
                                               "it in [net] anyway)")
    names = ", ".join(u.describe() for u in unknown)
    raise step.error(f"darknet reads no such key in [net] or a detection head: {names}",
                     "correct the spelling; add=" + ",".join(u.key for u in unknown) + " writes them anyway")


SPEC = Spec("cfg", "yolo",
            "Make a training cfg from a stock one: classes, filters before each [yolo], max_batches, steps, and any "
            "other key=value ([net] keys, or per-head keys such as random= in every [yolo]).",
            positionals=(Pos("TEMPLATE", "yolov3, yolov3-tiny, yolov4, yolov4-tiny, or a path"),
                         Pos("OUT", "the cfg to write")),
            options=(Opt("classes", "int", "number of classes", required=True), Opt("width", "int", "network width"),
                     Opt("height", "int", "network height"), Opt("batch", "int", "batch"),
                     Opt("subdivisions", "int", "subdivisions"),
                     Opt("max_batches", "str", "iterations, or auto (needs data=: sized from its train list)"),
                     Opt("steps", "str", "learning-rate steps, e.g. 4800,5400"),
                     Opt("learning_rate", "float", "learning rate"),
                     Opt("epochs", "int", "passes over the train list (needs data=): max_batches = epochs x "
                                          "images / batch, said in the edits (darknet counts iterations)"),
                     Opt("data", "path", "obj.data whose train list sizes max_batches=auto or epochs="),
                     Opt("add", "str", "comma-separated keys to write although darknet's parsers do not read them "
                                       "(any other unknown key is refused, with its near-match)")),
            open_options=True, example="%yolo cfg yolov4-tiny yolo-obj.cfg classes=2 width=416 height=416",
            check=_check, order=200)


def _inputs(step: Step, ctx: Context) -> tuple[Path, dict[str, Any], Optional[list[Path]]]:
    options = {k: v for k, v in step.options.items() if k not in ("classes", "data", "add")}
    if step.options.get("data"):
        options["dataset_size"] = train_images(ctx.path(step.options["data"]))
    search = [ctx.session.darknet_dir / "cfg"] if ctx.session.darknet_dir else None
    return resolve_template(step.args["TEMPLATE"], search), options, search


def run(step: Step, ctx: Context) -> Done:
    _, options, search = _inputs(step, ctx)
    out = ctx.output(step.args["OUT"], "the cfg", step)
    result = write_cfg(step.args["TEMPLATE"], out, step.options["classes"], options, search_dirs=search)
    for change in result.changes:
        ctx.reporter.info("  " + change)
    return Done(f"wrote {result.path} from {result.template} ({len(result.changes)} edits)", result)


def preview(step: Step, ctx: Context) -> list[str]:
    template, options, _ = _inputs(step, ctx)
    _, changes = make_cfg_changes(read_text(template), step.options["classes"], **options)
    return [f"write {ctx.path(step.args['OUT'])} from {template}:"] + ["  " + c for c in changes]
