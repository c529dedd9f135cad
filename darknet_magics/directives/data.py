"""`%yolo data`: obj.data (and .names and the image lists) with paths darknet can read."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..data.datasets import DataResult, write_data
from ..data.leftout import BoxPolicy, Policies
from ..data.resize import cfg_network_size, parse_resize
from ..errors import DarknetMagicsError
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..untrusted import writing
from ._dataset import show_and_bind
from ._runs import runs_root


NET = (416, 416)  # the network size min_box= and the summary's box sizes refer to


def _check(step: Step) -> None:
    opts = step.options
    has_lists = "train" in opts or "valid" in opts or "test" in opts
    if has_lists and "images" in opts:
        raise step.error("give either train=/valid= or images=, not both", "drop images=, or drop train= and valid=")
    if not has_lists and "images" not in opts:
        raise step.error("no images: give images=DIR, or train= (and valid=)",
                         "add images={dataset} (a dataset folder: YOLO, VOC, COCO, Roboflow, Ultralytics...)")
    if has_lists and "train" not in opts:
        raise step.error("missing train=", "add train=DIR or train=FILE (a folder of images, or a list)")
    split = opts.get("split")
    if split is not None and has_lists:  # train=/valid= ARE the split: every image keeps the one it is given
        given = "/".join(k + "=" for k in ("train", "valid", "test") if k in opts)
        raise step.error(f"split= conflicts with {given}: those already say which images validate, so split= "
                         "would be ignored", "drop split=, or give images=DIR (split= splits its unsplit images)")
    if split is not None and "{" not in split and not 0.0 <= float(split) < 1.0:
        raise step.error(f"split={split} must be at least 0 and below 1", "write e.g. split=0.1")


SPEC = Spec("data", "yolo", "Write obj.data (and .names, train.txt/valid.txt) with paths darknet can read.",
            positionals=(Pos("OUT", "the obj.data to write"),),
            options=(Opt("classes", "int", "number of classes (default: from the dataset)"),
                     Opt("names", "names", "a .names file, or the names: a,b,c (default: from the dataset)"),
                     Opt("train", "path", "training images: a folder or a list file"),
                     Opt("valid", "path", "validation images: a folder or a list file"),
                     Opt("test", "path", "test images: a folder or a list file (never trained on)"),
                     Opt("images", "path", "a dataset folder in any format we read; its own split is kept"),
                     Opt("format", "str", "yolo, ultralytics, voc, coco, labelme, cvat or openimages (default: "
                         "detected)"),
                     Opt("min_box", "float", "drop boxes under this many pixels at 416x416"),
                     Opt("split", "float", "validation fraction of the images the source did not split", default=0.1),
                     Opt("seed", "int", "seed of the split", default=0),
                     Opt("backup", "path", "obj.data's backup= (default {workspace}/backup), where darknet run by "
                                           "hand saves weights; `%yolo train` keeps each run's in "
                                           "{workspace}/runs/NAME/backup"),
                     Opt("difficult", "str", "VOC boxes marked difficult: drop (as darknet's voc_label.py) or keep",
                         choices=("drop", "keep"), default="drop"),
                     Opt("crowd", "str", "COCO iscrowd boxes: drop (as Ultralytics' converter) or keep",
                         choices=("drop", "keep"), default="drop"),
                     Opt("resize", "str", "WIDTHxHEIGHT or cfg (with cfg=): local copies of larger images, "
                         "smaller, so darknet's loader decodes less (labels stay: they are relative)"),
                     Opt("cfg", "path", "the cfg whose network size resize=cfg takes"),
                     Opt("keep_ids", "onoff", "class ids = the source's ids (COCO category ids, placeholders for "
                         "gaps); off: compacted to 0..N-1, the mapping printed", default=False)),
            allows_as=True,
            notes="Give either images=DIR (any format; classes and names from the source), or train= (and valid=, "
                  "test=), folders or lists. Lists are named after OUT (NAME.train.txt, NAME.valid.txt). Shows the "
                  "dataset (images and boxes per class, boxes per image, box sizes at 416x416) and binds it as a "
                  "dataframe, one row per box, to `as NAME` (default yolo_dataset).",
            example="%yolo data obj.data images={dataset}", check=_check, order=210)


def _policies(step: Step) -> Policies:
    return Policies(BoxPolicy(step.get("difficult")), BoxPolicy(step.get("crowd")), bool(step.get("keep_ids")))


def _resize(step: Step, ctx: Context) -> Optional[tuple[int, int]]:
    """resize= as a size (``cfg``: the network size of cfg=)."""
    value = step.get("resize")
    if not value:
        return None
    cfg = ctx.path(step.get("cfg")) if step.get("cfg") else None
    return parse_resize(value, cfg_network_size(cfg) if cfg is not None and value.strip() == "cfg" else None)


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


def _weights_line(ctx: Context, result: DataResult) -> str:
    """Where the weights of a training on this obj.data go: each `%yolo train` run's own folder (the obj.data's
    backup= is only darknet's when it runs by hand, as plan_train reads an obj.data `%yolo data` wrote)."""
    return (f"`%yolo train` saves each run's weights in {runs_root(ctx)}/NAME/backup "
            f"(backup={result.backup} is for darknet run by hand)")


def run(step: Step, ctx: Context) -> Done:
    def opt_path(key: str) -> Optional[Path]:
        return ctx.path(step.options[key]) if step.options.get(key) else None

    out = ctx.output(step.args["OUT"], "the obj.data", step)
    with writing("the dataset", out):  # a full or read-only disk: a clear error; every file is written atomically
        result = write_data(out, classes=step.get("classes"), names=step.get("names"),
                            train=opt_path("train"), valid=opt_path("valid"), test=opt_path("test"),
                            images=opt_path("images"), format=step.get("format"), min_box=step.get("min_box"),
                            split=step.get("split"), seed=step.get("seed"), backup=_backup(step, ctx, warn=True),
                            net=NET, reporter=ctx.reporter, policies=_policies(step),
                            resize=_resize(step, ctx))
    name = None
    if result.plan is not None:
        for line in result.plan.lines[:-2]:
            ctx.reporter.info(line)
        for problem in result.problems:
            ctx.reporter.info(problem.describe())
        if result.plan.datasets:
            from ..data.formats import Dataset, summary_frame

            plan = result.plan
            merged = Dataset(plan.format, plan.datasets[0].root, plan.names,
                             [im for d in plan.datasets for im in d.images])
            frame = summary_frame(merged, NET)
            # the source's class ids -> ours (COCO categories), bound with the frame: `yolo_dataset.attrs`
            frame.attrs["source_ids"] = dict(plan.datasets[0].source_ids)
            name = show_and_bind(step, ctx, frame, NET, _health(merged))
    errors = sum(1 for p in result.problems if p.severity == "error")
    return Done(f"wrote {result.data_path}: {result.n_train} train / {result.n_valid} valid"
                + (f" / {result.n_test} test" if result.n_test else "") + f" images; {_weights_line(ctx, result)}"
                + (f", {errors} error(s) above (their boxes left out)" if errors else "")
                + (f"; the boxes in `{name}`" if name else ""), result)


def _health(ds) -> list:
    """The health table's rows of a read dataset (boxes relative to each image, as darknet will read them)."""
    from ..data.health import LabeledImage, health

    return health([LabeledImage(str(im.path), im.split or "", tuple(
        (b.cls, (b.x0 + b.x1) / 2 / im.width, (b.y0 + b.y1) / 2 / im.height, (b.x1 - b.x0) / im.width,
         (b.y1 - b.y0) / im.height) for b in im.boxes)) for im in ds.images], ds.names)


def preview(step: Step, ctx: Context) -> list[str]:
    out = ctx.path(step.args["OUT"])
    source = (f"split the images under {ctx.path(step.options['images'])} ({step.get('split')} for validation)"
              if step.options.get("images") else
              f"the lists {ctx.path(step.options['train'])} and {ctx.path(step.options['valid'])}")
    try:
        from ..data.datasets import plan_dataset

        def opt_path(key: str) -> Optional[Path]:
            return ctx.path(step.options[key]) if step.options.get(key) else None

        plan = plan_dataset(out, images=opt_path("images"), train=opt_path("train"), valid=opt_path("valid"),
                            test=opt_path("test"), format=step.get("format"), classes=step.get("classes"),
                            names=step.get("names"), split=step.get("split"), seed=step.get("seed"),
                            min_box=step.get("min_box"), policies=_policies(step), resize=_resize(step, ctx))
        return plan.lines + [f"backup = {_backup(step, ctx, warn=False)}"]
    except (DarknetMagicsError, OSError):  # not there yet (an earlier line stages it): say what will be read
        return [f"write {out} from {source}", f"backup = {_backup(step, ctx, warn=False)}"]
