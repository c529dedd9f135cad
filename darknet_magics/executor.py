"""Runs a `Plan` step by step and owns what a session has established (drive, workspace, build, runs).

Each step gets a header, its duration and its outcome. The step modules below do the real work with plain
arguments; this module resolves placeholders, picks defaults and wires their results together. It never
imports IPython: the magics and the CLI hand it a `Reporter` and a namespace to bind results into.
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping, Optional

from .directives import BUILTIN_PLACEHOLDERS, Plan, Step
from .errors import DarknetMagicsError, StepError
from .report import Reporter

DEFAULT_RUN_NAME = "yolo_run"


@dataclass
class Session:
    """What earlier directives established, kept across cells of one kernel."""

    values: dict[str, Any] = field(default_factory=dict)  # placeholder values: drive, workspace, darknet, ...
    platform: str = "terminal"
    runtime: Any = None  # environment.RuntimeInfo
    drive: Any = None  # environment.DriveInfo
    clone: Any = None  # build.CloneResult
    build: Any = None  # build.BuildResult
    runs: dict[str, Any] = field(default_factory=dict)  # name -> training.TrainingRun
    last_run: Optional[str] = None

    def builtins(self) -> dict[str, str]:
        """Placeholders that always have a value: fast local disk, the working folder, home."""
        cwd = os.getcwd()
        local = "/content" if self.platform == "colab" else cwd
        return {"local": local, "cwd": cwd, "home": str(Path.home())}

    def placeholder_values(self, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        values: dict[str, Any] = dict(extra or {})
        values.update(self.builtins())
        values.update({k: v for k, v in self.values.items() if v is not None})
        return values

    def known(self) -> set[str]:
        return set(self.values) | set(BUILTIN_PLACEHOLDERS)


@dataclass(frozen=True)
class Outcome:
    """How one step ended."""

    step: Step
    status: str  # "done", "failed", "interrupted", "planned"
    seconds: float
    summary: str = ""
    result: Any = None


class Executor:
    """Runs plans against a `Session`, reporting through `reporter`, binding `as NAME` results into `namespace`."""

    def __init__(self, session: Session, reporter: Reporter,
                 namespace: Optional[MutableMapping[str, Any]] = None) -> None:
        self.session = session
        self.reporter = reporter
        self.namespace = namespace if namespace is not None else {}

    # ------------------------------------------------------------------------------------------ plans

    def run_plan(self, plan: Plan, *, dry_run: bool = False, headers: bool = True) -> list[Outcome]:
        """Run every step in order; stop at the first failure (the error propagates after its outcome line)."""
        if dry_run:
            return self.preview(plan)
        outcomes: list[Outcome] = []
        total = len(plan)
        for index, step in enumerate(plan, start=1):
            if headers:
                self.reporter.header(f"[{index}/{total}] {step.source}")
            start = time.monotonic()
            try:
                resolved = step.resolve(self._values())
                summary, result = self._handler("do", step.name)(resolved)
            except KeyboardInterrupt:
                self.reporter.info(f"  interrupted after {time.monotonic() - start:.1f} s")
                raise
            except DarknetMagicsError:
                if headers:
                    self.reporter.info(f"  failed after {time.monotonic() - start:.1f} s")
                raise
            seconds = time.monotonic() - start
            if headers:
                self.reporter.info(f"  done in {_fmt_seconds(seconds)}" + (f": {summary}" if summary else ""))
            elif summary:
                self.reporter.info(summary)
            outcomes.append(Outcome(step, "done", seconds, summary, result))
        return outcomes

    def run_step(self, step: Step) -> Any:
        """Run one `%yolo` step without the plan header; returns its result (a run, a dataframe, ...)."""
        outcomes = self.run_plan(Plan((step,)), headers=False)
        return outcomes[0].result if outcomes else None

    def preview(self, plan: Plan) -> list[Outcome]:
        """Print what each step would do (commands, file edits) and run nothing.

        Values that earlier steps would establish are simulated so later lines show real paths.
        """
        saved = dict(self.session.values)
        outcomes = []
        try:
            for index, step in enumerate(plan, start=1):
                self.reporter.header(f"[{index}/{len(plan)}] {step.source}")
                resolved = step.resolve(self._values())
                lines = self._handler("preview", step.name)(resolved)
                for line in lines:
                    self.reporter.info("  " + line)
                outcomes.append(Outcome(step, "planned", 0.0, "; ".join(lines)))
        finally:
            self.session.values = saved
        self.reporter.info("(dry run: nothing was run)")
        return outcomes

    def _values(self) -> dict[str, Any]:
        extra = {k: v for k, v in self.namespace.items()
                 if not k.startswith("_") and isinstance(v, (str, int, float, Path))}
        return self.session.placeholder_values(extra)

    def _handler(self, kind: str, name: str) -> Callable[[Step], Any]:
        method = getattr(self, f"_{kind}_{name}", None)
        if method is None and kind == "preview":
            return lambda step: [f"run: %yolo {_step_text(step)}"]
        return method

    # ------------------------------------------------------------------------------------------ helpers

    def _path(self, text: str) -> Path:
        # Absolute (darknet may run in another folder) but not resolved: a space-free alias must stay one.
        return Path(os.path.abspath(os.path.expanduser(text)))

    def _workspace(self) -> Optional[Path]:
        ws = self.session.values.get("workspace")
        return Path(ws) if ws else None

    def _local(self) -> Path:
        return Path(self.session.builtins()["local"])

    def _darknet_binary(self, step: Step) -> str:
        """``bin=``, else the binary the last `make` produced, else `darknet` on PATH."""
        if step.get("bin"):
            return str(self._path(step.get("bin")))
        if self.session.values.get("bin"):
            return str(self.session.values["bin"])
        found = shutil.which("darknet")
        if found:
            return found
        raise StepError("no darknet binary: no `make` ran in this session and `darknet` is not on PATH",
                        fix="run `clone` and `make` in a %%darknet cell, or pass bin=/path/to/darknet")

    def _runtime(self) -> Any:
        if self.session.runtime is None:
            from . import environment

            self.session.runtime = environment.probe_runtime()
        return self.session.runtime

    def _bind(self, step: Step, value: Any, default: Optional[str] = None) -> Optional[str]:
        name = step.as_name or default
        if name:
            self.namespace[name] = value
        return name

    # ------------------------------------------------------------------------------------------ %%darknet

    def _do_runtime(self, step: Step) -> tuple[str, Any]:
        from . import environment

        info = environment.probe_runtime()
        self.session.runtime = info
        self.reporter.table(info.rows())
        for warning in info.warnings:
            self.reporter.warn(warning)
        return (info.gpu_name or "no GPU"), info

    def _preview_runtime(self, step: Step) -> list[str]:
        return ["probe: nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader",
                "probe: nvcc --version; nvcc --list-gpu-arch; cudnn_version.h; pkg-config --modversion opencv4"]

    def _do_drive(self, step: Step) -> tuple[str, Any]:
        from . import environment

        alias = step.get("alias")
        info = environment.mount_drive(step.args.get("PATH"), self.reporter,
                                       alias_dir=self._path(alias) if alias else None)
        self.session.drive = info
        self.session.values["drive"] = str(info.root)
        # The default workspace; created by the first step that writes into it (a `workspace` line may follow).
        self.session.values.setdefault("workspace", str(Path(info.root) / "darknet"))
        return f"{{drive}} = {info.root}; {{workspace}} = {self.session.values['workspace']}", info

    def _preview_drive(self, step: Step) -> list[str]:
        path = step.args.get("PATH")
        if self.session.platform == "colab":
            mount = path or "/content/drive"
            root = f"{mount}/MyDrive"
            lines = [f"google.colab.drive.mount({mount!r})"]
        else:
            if not path:
                return ["error: outside Colab, `drive PATH` needs a local folder"]
            root = path
            lines = [f"use the local folder {path!r} as the drive"]
        self.session.values["drive"] = root
        self.session.values.setdefault("workspace", f"{root}/darknet")
        return lines + [f"{{drive}} = {root}", f"{{workspace}} = {self.session.values['workspace']}"]

    def _do_workspace(self, step: Step) -> tuple[str, Any]:
        path = self._path(step.args["PATH"])
        path.mkdir(parents=True, exist_ok=True)
        self.session.values["workspace"] = str(path)
        if any(c.isspace() for c in str(path)):
            self.reporter.warn(f"the workspace path {str(path)!r} has spaces: darknet cannot read such paths in "
                               "obj.data; `drive` gives a space-free {drive} alias, use it")
        return f"{{workspace}} = {path}", path

    def _preview_workspace(self, step: Step) -> list[str]:
        self.session.values["workspace"] = step.args["PATH"]
        return [f"mkdir -p {step.args['PATH']!r}", f"{{workspace}} = {step.args['PATH']}"]

    def _do_cudnn(self, step: Step) -> tuple[str, Any]:
        from . import environment

        result = environment.install_cudnn(self._path(step.args["TARBALL"]), self._path(step.get("cuda")),
                                           self.reporter)
        self.session.runtime = None  # the cuDNN version changed: probe again when needed
        return f"cuDNN {result.version} {result.action}", result

    def _preview_cudnn(self, step: Step) -> list[str]:
        return [f"unpack {step.args['TARBALL']!r} into {step.get('cuda')}/include and lib64 (skipped when that "
                "version is installed)"]

    def _clone_target(self, step: Step) -> Path:
        into = step.get("into")
        return self._path(into) if into else self._local() / "darknet"

    def _do_clone(self, step: Step) -> tuple[str, Any]:
        from . import build

        result = build.clone(step.args.get("URL"), step.get("ref"), self._clone_target(step), self.reporter)
        self.session.clone = result
        self.session.values["darknet"] = str(result.path)
        return f"{result.action} {result.path} at {result.commit[:12]}", result

    def _preview_clone(self, step: Step) -> list[str]:
        from . import build

        into = self._clone_target(step)
        self.session.values["darknet"] = str(into)
        return [_argv_text(argv) for argv in build.clone_commands(step.args.get("URL"), step.get("ref"), into)]

    def _make_args(self, step: Step) -> dict[str, Any]:
        from .directives import _MAKE_FLAGS

        source = step.get("dir") or self.session.values.get("darknet")
        if not source:
            raise StepError("make: no darknet source folder", fix="run `clone` first, or give make dir=PATH")
        flags = {k: step.options[k] for k in _MAKE_FLAGS if k in step.options}
        workspace = self._workspace()
        use_cache = step.get("cache", workspace is not None)
        if use_cache and workspace is None:
            raise StepError("make cache=on needs a workspace to keep the cache in",
                            fix="add a `workspace PATH` (or `drive`) line before `make`, or use cache=off")
        return dict(darknet_dir=self._path(str(source)), flags=flags, arch=step.get("ARCH"), jobs=step.get("jobs"),
                    cache_dir=(workspace / "cache") if use_cache else None)

    def _do_make(self, step: Step) -> tuple[str, Any]:
        from . import build

        args = self._make_args(step)
        commit = self.session.clone.commit if self.session.clone is not None else None
        # In Colab (root, apt, a fresh VM) OPENCV=1 installs libopencv-dev itself; elsewhere it says what to run.
        result = build.make(runtime=self._runtime(), reporter=self.reporter, commit=commit,
                            install_opencv=self.session.platform == "colab", **args)
        self.session.build = result
        self.session.values["bin"] = str(result.binary)
        return f"{result.action}: {result.binary}", result

    def _preview_make(self, step: Step) -> list[str]:
        args = self._make_args(step)
        lines = []
        if args["flags"]:
            lines.append(f"patch {args['darknet_dir']}/Makefile: " +
                         ", ".join(f"{k}={v}" for k, v in args["flags"].items()) + " (original kept as Makefile.orig)")
        if args["arch"]:
            lines.append(f"ARCH for compute capability {args['arch']} (checked against nvcc --list-gpu-arch)")
        if args["cache_dir"]:
            lines.append(f"restore from the build cache in {args['cache_dir']} when this build was made before")
        jobs = args["jobs"] or os.cpu_count() or 1
        lines.append(f"make -j{jobs} -C {args['darknet_dir']}")
        self.session.values["bin"] = str(args["darknet_dir"] / "darknet")
        return lines

    def _stage_into(self, step: Step) -> Path:
        """The local folder the dataset lands in (like `cp -r SRC DIR`): into=, else {local}/data."""
        into = step.get("into")
        return self._path(into) if into else self._local() / "data"

    def _stage_target(self, step: Step) -> Path:
        name = Path(step.args["SRC"].rstrip("/")).name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return self._stage_into(step) / name

    def _do_stage(self, step: Step) -> tuple[str, Any]:
        from . import staging

        result = staging.stage(self._path(step.args["SRC"]), self._stage_into(step), pack=step.get("pack"),
                                reporter=self.reporter)
        self.session.values["dataset"] = str(result.path)
        return f"{result.action} {result.files} files into {result.path}", result

    def _preview_stage(self, step: Step) -> list[str]:
        into = self._stage_target(step)
        self.session.values["dataset"] = str(into)
        pack = " (packing the folder into one archive on the drive first)" if step.get("pack") else ""
        return [f"copy {step.args['SRC']!r} into {str(self._stage_into(step))!r}{pack}, skipped when the local copy "
                "is complete",
                f"{{dataset}} = {into}"]

    def _weights_dir(self, step: Step) -> Path:
        into = step.get("into")
        if into:
            return self._path(into)
        workspace = self._workspace()
        if workspace is None:
            raise StepError("weights: no folder to keep them in", fix="add a `workspace` line first, or into=DIR")
        return workspace / "weights"

    def _do_weights(self, step: Step) -> tuple[str, Any]:
        from . import weights

        result = weights.fetch_weights(step.args["NAME"], self._weights_dir(step), self.reporter)
        self.session.values["weights"] = str(result.path)
        return f"{result.action} {result.path}", result

    def _preview_weights(self, step: Step) -> list[str]:
        into = self._weights_dir(step)
        name = step.args["NAME"]
        target = into / name.rsplit("/", 1)[-1]
        self.session.values["weights"] = str(target)
        return [f"download {name} -> {target} (once; reused from the drive later)", f"{{weights}} = {target}"]

    def _do_set(self, step: Step) -> tuple[str, Any]:
        self.session.values.update(step.options)
        return ", ".join(f"{{{k}}} = {v}" for k, v in step.options.items()), dict(step.options)

    def _preview_set(self, step: Step) -> list[str]:
        return [self._do_set(step)[0]]

    # ------------------------------------------------------------------------------------------ %yolo

    def _run_dir(self, step: Step) -> Path:
        workspace = self._workspace() or Path.cwd()
        stem = Path(step.args["CFG"]).stem
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return workspace / "runs" / f"{stem}-{stamp}"

    def _do_train(self, step: Step) -> tuple[str, Any]:
        from . import checks, training

        data, cfg = self._path(step.args["DATA"]), self._path(step.args["CFG"])
        weights = self._path(step.args["WEIGHTS"]) if step.args.get("WEIGHTS") else None
        problems = checks.check(data, cfg, weights=weights)
        if step.get("backup"):  # obj.data's own backup= is not used by this run
            problems = [p for p in problems if p.code != "missing-backup"]
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            if p.severity != "error" or "force" in step.flags:
                self.reporter.warn(p.describe())
        if errors and "force" not in step.flags:
            raise StepError(f"the pre-flight check found {len(errors)} error(s); training was not started",
                            fix="fix them (see `%yolo check`), or add `force` to start anyway", problems=errors)
        backup = step.get("backup")
        darknet = self._darknet_binary(step)
        run_dir = self._run_dir(step)
        with self._keep_run_on_failure(step):
            run = training.train(darknet=darknet, data=data, cfg=cfg, weights=weights,
                                 map="map" in step.flags, gpus=step.get("gpus"),
                                 backup=self._path(backup) if backup else None, clear="clear" in step.flags,
                                 run_dir=run_dir, reporter=self.reporter,
                                 stop_on_nan=step.get("stop_on_nan", True))
        return self._finish_run(step, run)

    @contextmanager
    def _keep_run_on_failure(self, step: Step) -> Iterator[None]:
        """A run that failed, diverged or was interrupted is still bound to its name: its log and dataframes are
        what the user needs to see what happened (and what `%yolo resume` continues)."""
        try:
            yield
        except (StepError, KeyboardInterrupt) as exc:
            run = getattr(exc, "run", None)
            if run is not None:
                self._finish_run(step, run)
            raise

    def _finish_run(self, step: Step, run: Any) -> tuple[str, Any]:
        name = self._bind(step, run, DEFAULT_RUN_NAME)
        run.name = name
        self.session.runs[name] = run
        self.session.last_run = name
        return f"{run.summary()} (bound to `{name}`)", run

    def _find_run(self, ref: Optional[str]) -> Any:
        from . import training

        if ref:
            obj = self.namespace.get(ref) or self.session.runs.get(ref)
            if obj is not None:
                return obj
            path = self._path(ref)
            if path.is_dir():
                return training.TrainingRun.load(path)
            raise StepError(f"no run named {ref!r} and no run folder at {path}",
                            fix="give the run's variable name, or its folder under {workspace}/runs")
        if self.session.last_run and self.session.last_run in self.session.runs:
            return self.session.runs[self.session.last_run]
        workspace = self._workspace()
        if workspace and (workspace / "runs").is_dir():
            candidates = sorted((p for p in (workspace / "runs").iterdir() if (p / "run.json").exists()),
                                key=lambda p: p.stat().st_mtime)
            if candidates:
                self.reporter.info(f"the latest run folder: {candidates[-1]}")
                return training.TrainingRun.load(candidates[-1])
        raise StepError("no run to resume in this session",
                        fix="give the run folder: %yolo resume {workspace}/runs/NAME (after a VM reset run the "
                            "%%darknet cell with `drive`/`workspace` first)")

    def _do_resume(self, step: Step) -> tuple[str, Any]:
        from . import training

        previous = self._find_run(step.args.get("NAME"))
        with self._keep_run_on_failure(step):
            run = training.resume(previous, self.reporter, darknet=step.get("bin") or None,
                                  max_batches=step.get("max_batches"))
        return self._finish_run(step, run)

    def _do_log(self, step: Step) -> tuple[str, Any]:
        from . import training

        run = training.load_log(self._path(step.args["PATH"]), self.reporter)
        return self._finish_run(step, run)

    def _darknet_cwd(self) -> Path:
        """Where `detector test/map` run: darknet loads data/labels/*.png (box label glyphs) relative to its
        working folder, so a clone's binary runs in its clone; Debian's packaged one finds them itself."""
        source = self.session.values.get("darknet")
        if source and (Path(source) / "data" / "labels").is_dir():
            return Path(source)
        return Path.cwd()

    def _do_map(self, step: Step) -> tuple[str, Any]:
        from . import inference

        report = inference.evaluate_map(darknet=self._darknet_binary(step), data=self._path(step.args["DATA"]),
                                       cfg=self._path(step.args["CFG"]), weights=self._path(step.args["WEIGHTS"]),
                                       cwd=self._darknet_cwd(), reporter=self.reporter)
        self._bind(step, report)
        return report.summary(), report

    def _do_test(self, step: Step) -> tuple[str, Any]:
        from . import inference

        result = inference.detect(darknet=self._darknet_binary(step), data=self._path(step.args["DATA"]),
                                 cfg=self._path(step.args["CFG"]), weights=self._path(step.args["WEIGHTS"]),
                                 image=self._path(step.args["IMAGE"]), thresh=step.get("thresh"), cwd=self._darknet_cwd(),
                                 reporter=self.reporter)
        self._bind(step, result)
        return result.summary(), result

    def _do_anchors(self, step: Step) -> tuple[str, Any]:
        from . import anchors

        result = anchors.compute_anchors(self._path(step.args["DATA"]), clusters=step.get("clusters"),
                                         width=step.get("width"), height=step.get("height"))
        self.reporter.info(anchors.anchors_line(result))
        self.reporter.info(f"avg IoU = {result.avg_iou * 100:.2f} % over {result.boxes} boxes")
        cfg = step.get("cfg")
        if cfg:
            from .fileio import atomic_write_text

            cfg_path = self._path(cfg)
            atomic_write_text(cfg_path, anchors.set_anchors(cfg_path.read_text(), result))
            self.reporter.info(f"wrote the anchors into {cfg_path}")
        self._bind(step, result)
        return f"{len(result.anchors)} anchors, avg IoU {result.avg_iou * 100:.2f} %", result

    def _do_cfg(self, step: Step) -> tuple[str, Any]:
        from . import cfg as cfgmod

        options = {k: v for k, v in step.options.items() if k not in ("classes", "data")}
        if step.options.get("data"):
            options["dataset_size"] = _train_images(self._path(step.options["data"]))
        search = [Path(self.session.values["darknet"]) / "cfg"] if self.session.values.get("darknet") else None
        result = cfgmod.write_cfg(step.args["TEMPLATE"], self._path(step.args["OUT"]), step.options["classes"],
                                  options, search_dirs=search)
        for change in result.changes:
            self.reporter.info("  " + change)
        return f"wrote {result.path} from {result.template} ({len(result.changes)} edits)", result

    def _do_data(self, step: Step) -> tuple[str, Any]:
        from . import datasets

        backup = step.get("backup")
        if backup:
            backup_path = self._path(backup)
        elif self._workspace() is not None:
            backup_path = self._workspace() / "backup"
        else:
            backup_path = self._path(step.args["OUT"]).resolve().parent / "backup"
            self.reporter.warn(f"no workspace: weights will be saved to {backup_path}, which a new VM loses; "
                               "set `workspace` (or `drive`) first, or backup=DIR")

        def opt_path(key: str) -> Optional[Path]:
            return self._path(step.options[key]) if step.options.get(key) else None

        result = datasets.write_data(self._path(step.args["OUT"]), classes=step.options["classes"],
                                     names=step.options["names"], train=opt_path("train"), valid=opt_path("valid"),
                                     images=opt_path("images"), split=step.get("split"), seed=step.get("seed"),
                                     backup=backup_path)
        return (f"wrote {result.data_path}: {result.n_train} train / {result.n_valid} valid images, "
                f"backup={result.backup}"), result

    def _do_check(self, step: Step) -> tuple[str, Any]:
        from . import checks

        cfg = self._path(step.args["CFG"]) if step.args.get("CFG") else None
        weights = self._path(step.args["WEIGHTS"]) if step.args.get("WEIGHTS") else None
        problems = checks.check(self._path(step.args["DATA"]), cfg, weights=weights)
        self.reporter.info(checks.format_report(problems))
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise StepError(f"check found {len(errors)} error(s)", fix="fix them before training (each line says how)")
        warnings = sum(1 for p in problems if p.severity == "warning")
        return f"no errors, {warnings} warning(s)", problems

    def _do_status(self, step: Step) -> tuple[str, Any]:
        from . import training

        try:
            run = self._find_run(None)
        except StepError:
            return "no training run in this session or under {workspace}/runs", None
        return training.status(run), run


def _step_text(step: Step) -> str:
    """A resolved step as a line again (placeholders filled), for the dry run."""
    import shlex

    words = [step.name] + [shlex.quote(str(v)) for v in step.args.values()]
    words += [f"{k}={shlex.quote(str(v))}" for k, v in step.options.items()] + sorted(step.flags)
    if step.as_name:
        words += ["as", step.as_name]
    return " ".join(words)


def _train_images(data_path: Path) -> int:
    """How many images the obj.data's train list names (max_batches=auto is sized from it)."""
    from .checks import read_data_file

    entries = read_data_file(data_path.read_text(encoding="utf-8", errors="replace"))
    train = entries.get("train")
    if train is None:
        raise StepError(f"{data_path} has no train= line", fix="write it with %yolo data first")
    with open(train.value, encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if line.strip())


def _argv_text(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(str(a)) for a in argv)


def _fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes} min {sec} s"
