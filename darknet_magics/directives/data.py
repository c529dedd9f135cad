"""`%yolo data`: obj.data (and .names and the image lists) with paths darknet can read."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..datasets import write_data
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done


def _check(step: Step) -> None:
    opts = step.options
    has_lists = "train" in opts or "valid" in opts
    if has_lists and "images" in opts:
        raise step.error("give either train=/valid= or images=, not both", "drop images=, or drop train= and valid=")
    if not has_lists and "images" not in opts:
        raise step.error("no images: give train= and valid=, or images=DIR",
                         "add images={dataset} (a folder of images and labels)")
    if has_lists and not ("train" in opts and "valid" in opts):
        need = "valid" if "train" in opts else "train"
        raise step.error(f"missing {need}=", f"add {need}=FILE (a list of images, one path per line)")
    if "split" in opts and "images" not in opts:
        raise step.error("split= only applies with images=", "remove split=, or use images=DIR")
    split = opts.get("split")
    if split is not None and "{" not in split and not 0.0 <= float(split) < 1.0:
        raise step.error(f"split={split} must be at least 0 and below 1", "write e.g. split=0.1")


SPEC = Spec("data", "yolo", "Write obj.data (and .names, train.txt/valid.txt) with paths darknet can read.",
            positionals=(Pos("OUT", "the obj.data to write"),),
            options=(Opt("classes", "int", "number of classes", required=True),
                     Opt("names", "names", "a .names file, or the names: a,b,c", required=True),
                     Opt("train", "path", "a list of training images"),
                     Opt("valid", "path", "a list of validation images"),
                     Opt("images", "path", "a folder of images (+ labels) to split into train/valid"),
                     Opt("split", "float", "validation fraction with images=", default=0.1),
                     Opt("seed", "int", "seed of the split", default=0),
                     Opt("backup", "path", "where training saves weights (default {workspace}/backup)")),
            notes="Give either train= and valid=, or images= (and optionally split=).",
            example="%yolo data obj.data classes=2 names=helmet,head images={dataset}", check=_check, order=210)


def _backup(step: Step, ctx: Context, *, warn: bool) -> Path:
    if step.get("backup"):
        return ctx.path(step.get("backup"))
    if ctx.session.workspace is not None:
        return ctx.session.workspace / "backup"
    backup = ctx.path(step.args["OUT"]).resolve().parent / "backup"
    if warn:
        ctx.reporter.warn(f"no workspace: weights will be saved to {backup}, which a new VM loses; "
                          "set `workspace` (or `drive`) first, or backup=DIR")
    return backup


def run(step: Step, ctx: Context) -> Done:
    def opt_path(key: str) -> Optional[Path]:
        return ctx.path(step.options[key]) if step.options.get(key) else None

    result = write_data(ctx.path(step.args["OUT"]), classes=step.options["classes"], names=step.options["names"],
                        train=opt_path("train"), valid=opt_path("valid"), images=opt_path("images"),
                        split=step.get("split"), seed=step.get("seed"), backup=_backup(step, ctx, warn=True))
    return Done(f"wrote {result.data_path}: {result.n_train} train / {result.n_valid} valid images, "
                f"backup={result.backup}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    out = ctx.path(step.args["OUT"])
    source = (f"split the images under {ctx.path(step.options['images'])} ({step.get('split')} for validation)"
              if step.options.get("images") else
              f"the lists {ctx.path(step.options['train'])} and {ctx.path(step.options['valid'])}")
    return [f"write {out} (classes={step.options['classes']}, names {step.options['names']}) from {source}",
            f"backup = {_backup(step, ctx, warn=False)}"]
