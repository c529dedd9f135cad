"""What a training session will run, worked out before anything starts: the binary and its flavor, the weights
folder, the obj.data darknet gets, argv; for a new run (`plan_train`) or one that goes on (`plan_resume`). The dry
run prints the same plan.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ..data import objdata
from ..setup.binary import darknet_flavor, require_file, resolve_darknet
from ..setup.flavor import Flavor, flavor_of
from ..data.cfg import Cfg
from ..errors import DarknetMagicsError, Problem, StepError
from ..fileio import atomic_write_text
from .keeper import read_state, same_process
from .record import LOG_NAME, RUN_JSON, RecordError, RunArgs, RunRecord, RunStatus, confirm_binary, read_record  # noqa: F401 (RUN_JSON, LOG_NAME: re-exported)
from ..report import Reporter
from ..safenames import check_argv_paths
from .runs import TrainingRun, cfg_net_int, find_resume_weights, weights_iteration

__all__ = ["TrainPlan", "plan_train", "plan_resume", "refuse_shared_backup", "live_records", "live_run_warnings"]


@dataclass(frozen=True)
class TrainPlan:
    """What `train` will run, worked out before anything starts (the dry run prints `describe()`).

    `data_arg` is the obj.data darknet gets: the per-run copy whose ``backup=`` is `backup_dir` when the run keeps
    its own weights folder (`own_backup`), else the user's file.
    """

    darknet: Path
    flavor: Optional[Flavor]
    data: Path
    cfg: Path
    weights: Optional[Path]
    run_dir: Path
    backup_dir: Path
    own_backup: bool
    data_arg: Path
    argv: tuple[str, ...]
    cwd: Path
    max_batches: Optional[int]
    args: RunArgs
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        lines = [f"run folder {self.run_dir} (train.log, history.jsonl, run.json)"]
        if self.own_backup:
            lines.append(f"weights into {self.backup_dir} (this run's own folder; obj.data copied to {self.data_arg})")
        else:
            lines.append(f"weights into {self.backup_dir}")
        lines.append(" ".join(self.argv) + f"   (in {self.cwd})")
        return lines + [f"warning: {w}" for w in self.warnings]


def _argv(darknet: Path, data: Path, cfg: Path, weights: Optional[Path], *, map: bool, gpus: Optional[str],
          clear: bool, flavor: Optional[Flavor], extra_args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv, warnings). pjreddie takes neither -dont_show (it reads it as the weights file) nor -map; an unknown
    flavor gets both (it is AlexeyAB's or hank-ai's: pjreddie's is recognised by its bytes)."""
    argv = [str(darknet), "detector", "train", str(data), str(cfg)]
    warnings = []
    if weights is not None:
        argv.append(str(weights))
    if flavor is None or flavor.knows_dont_show:
        argv.append("-dont_show")
    if map:
        if flavor is not None and not flavor.maps_while_training:
            warnings.append("pjreddie's darknet cannot compute mAP while training: `map` ignored "
                            "(build AlexeyAB's or hank-ai's darknet for -map)")
        else:
            argv.append("-map")
    if gpus:
        argv += ["-gpus", str(gpus)]
    if clear:
        argv.append("-clear")
    return argv + [str(a) for a in extra_args], warnings


def absolute_path(path: Path | str) -> Path:
    # abspath, not resolve(): a space-free link that `drive` made must stay the path darknet gets
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def plan_train(*, darknet: Path | str, data: Path, cfg: Path, weights: Optional[Path] = None, map: bool = False,
               gpus: Optional[str] = None, backup: Optional[Path] = None, clear: bool = False, run_dir: Path,
               stop_on_nan: bool = True, extra_args: Sequence[str] = (), cwd: Optional[Path] = None,
               flavor: Optional[Flavor | str] = None, check_files: bool = True) -> TrainPlan:
    """Work out a training run: the binary and its flavor, the weights folder, the obj.data darknet gets, argv.

    The weights folder: `backup` when given; else the backup= of a user's own obj.data; else (an obj.data that
    `%yolo data` wrote, or one without backup=) the run's own ``run_dir/backup`` on the drive. Nothing is written.
    `check_files=False` plans for files that earlier lines of a dry run would make.
    """
    darknet_path = resolve_darknet(darknet) if check_files else absolute_path(darknet)
    if check_files:
        data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
        weights_path = require_file(Path(weights), "weights") if weights else None
        check_argv_paths(data=data_path, cfg=cfg_path, weights=weights_path)
    else:
        data_path, cfg_path = absolute_path(data), absolute_path(cfg)
        weights_path = absolute_path(weights) if weights else None
    run_dir = absolute_path(run_dir)
    cwd = absolute_path(cwd) if cwd else Path.cwd()
    flavor = flavor_of(flavor or darknet_flavor(darknet_path))
    written = objdata.values(data_path) if data_path.is_file() else {}
    ours = data_path.is_file() and objdata.written_by_us(data_path)
    if backup is not None:
        backup_dir, own = absolute_path(backup), True
    elif written.get("backup") and not ours:
        backup_dir, own = Path(written["backup"]), False
        if not backup_dir.is_absolute():
            backup_dir = cwd / backup_dir
    else:
        backup_dir, own = run_dir / "backup", True
    data_arg = run_dir / "obj.data" if own else data_path
    argv, warnings = _argv(darknet_path, data_arg, cfg_path, weights_path, map=map, gpus=gpus, clear=clear,
                           flavor=flavor, extra_args=extra_args)
    args = RunArgs(darknet=darknet_path, data=data_path, cfg=cfg_path, weights=weights_path, map=map,
                   gpus=str(gpus) if gpus else None, backup=backup_dir if own else None, backup_dir=backup_dir,
                   clear=clear, stop_on_nan=stop_on_nan, extra_args=tuple(str(a) for a in extra_args), cwd=cwd,
                   flavor=flavor)
    return TrainPlan(darknet=darknet_path, flavor=flavor, data=data_path, cfg=cfg_path, weights=weights_path,
                     run_dir=run_dir, backup_dir=backup_dir, own_backup=own, data_arg=data_arg, argv=tuple(argv),
                     cwd=cwd, max_batches=cfg_net_int(cfg_path, "max_batches") if cfg_path.is_file() else None,
                     args=args, warnings=tuple(warnings))


@contextmanager
def starting(plan: TrainPlan) -> Iterator[None]:
    """Held while a session checks for runs that share its weights folder and writes its own run.json: two kernels
    starting at the same second see each other (the second finds the first's run.json), never both nothing."""
    root = plan.run_dir.parent
    root.mkdir(parents=True, exist_ok=True)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the runs folder itself is the lock: no file of ours in it
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # closing releases the lock


def refuse_shared_backup(plan: TrainPlan, previous: Optional[TrainingRun]) -> None:
    """A StepError when another run under the same runs folder is still training into this plan's weights folder
    (a user's obj.data ``backup=`` or ``backup=PATH`` given twice): both would write ``<cfg>_last.weights``."""
    other = _training_into(plan.backup_dir, plan.run_dir.parent, skip=plan.run_dir)
    if other is None or (previous is not None and other == previous.run_dir):
        return
    message = f"the weights folder {plan.backup_dir} is in use by the run {other.name} (still training)"
    fix = (f"wait for it (or `%yolo stop {other}`), or give this run its own folder: backup=PATH (or remove "
           "backup= from your obj.data: each run then gets {workspace}/runs/NAME/backup)")
    if previous is None:
        try:
            plan.run_dir.rmdir()  # a refused new run leaves no folder behind (only an empty one is removed)
        except OSError:
            pass
    raise StepError(message, fix=fix, problems=[Problem("shared-backup", "two live runs would overwrite each "
                                                        "other's weights", fix=fix, file=str(plan.backup_dir))])


def _training_into(backup_dir: Path, root: Path, *, skip: Path) -> Optional[Path]:
    """The folder of a run under `root` (not `skip`) whose darknet still trains into `backup_dir`, or None."""
    for folder, rec in live_records(root, skip=skip):
        if rec.args.backup_dir is not None and absolute_path(rec.args.backup_dir) == absolute_path(backup_dir):
            return folder
    return None


def live_records(root: Path, *, skip: Optional[Path] = None) -> list[tuple[Path, RunRecord]]:
    """The run folders under `root` (not `skip`) whose darknet still trains, with their records. Alive means its
    keeper or darknet (background: keeper.json), or the kernel that runs it (foreground: the session's owner), is
    still the recorded process on this boot; a damaged run.json is no evidence of anything and is passed over."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder == skip or not (folder / RUN_JSON).is_file():
            continue
        try:
            rec = read_record(folder)
        except (DarknetMagicsError, OSError):
            continue
        if rec.status is not RunStatus.RUNNING or not rec.sessions:
            continue
        last = rec.sessions[-1]
        owner, state = last.get("owner") or {}, read_state(folder) if last.get("keeper") else None
        if state and any(same_process(state.get(k), state.get(t), state.get("boot_id"))
                         for k, t in (("keeper_pid", "keeper_start"), ("darknet_pid", "darknet_start"))):
            found.append((folder, rec))
        elif not last.get("keeper") and same_process(owner.get("pid"), owner.get("start"), owner.get("boot_id")):
            found.append((folder, rec))
    return found


def live_run_warnings(plan: TrainPlan, previous: Optional[TrainingRun]) -> list[str]:
    """A warning for each other run under this plan's runs folder that still trains on this machine: a second
    darknet on one GPU slows both and may end one of them with CUDA out of memory. Runs given other GPUs (gpus=)
    than this one are no concern."""
    warnings = []
    mine = set((plan.args.gpus or "").split(","))
    for folder, rec in live_records(plan.run_dir.parent, skip=plan.run_dir):
        if previous is not None and folder == previous.run_dir:
            continue
        theirs = set((rec.args.gpus or "").split(","))
        if plan.args.gpus and rec.args.gpus and not mine & theirs:
            continue
        name = rec.name or folder.name
        warnings.append(f"the run {name} ({folder}) is still training on this machine: two trainings on one GPU "
                        "both slow down, and one may stop with CUDA out of memory; `%yolo stop "
                        f"{name}` first, or wait for it (`{name}.wait()`), or give each run its own GPU (gpus=)")
    return warnings


def plan_resume(run: TrainingRun | Path | str, reporter: Optional[Reporter] = None, *,
                darknet: Optional[Path | str] = None, session_binary: Optional[Path] = None,
                max_batches: Optional[int] = None, weights: Optional[Path] = None,
                **overrides: Any) -> tuple[TrainingRun, TrainPlan]:
    """(the run, the plan that continues it from its backup's newest weights with the same arguments).

    `run` may be a `TrainingRun` or its folder (after a VM reset). `darknet` overrides the binary; a run read
    from a folder runs the darknet its run.json names only when `session_binary` (this session's `make`, else
    darknet on PATH) confirms it (`record.confirm_binary`). `weights` overrides the weights to resume from. To
    train past the old max_batches, raise it in the cfg first (`max_batches` does).
    """
    if not isinstance(run, TrainingRun):
        run = TrainingRun.load(run)
    args = run.args
    if not args.resumable or args.cfg is None or args.data is None:
        raise StepError("this run was read from a log (`%yolo log`): it has no darknet arguments to resume with",
                        fix="resume its run folder (%yolo resume {workspace}/runs/NAME), or start again with "
                            "%yolo train DATA CFG WEIGHTS using its last weights")
    if darknet is None:
        darknet = args.darknet
        if run.from_disk:
            found = shutil.which("darknet")
            darknet = confirm_binary(args.darknet, None, session_binary or (Path(found) if found else None),
                                     args.flavor, darknet_flavor)
            if reporter is not None and str(darknet) != str(args.darknet):
                reporter.info(f"run.json names the darknet {args.darknet}; using this session's {darknet} (the same "
                              f"flavor, {args.flavor}); bin=PATH chooses another")
    cfg = args.cfg
    backup_dir = args.backup_dir or Path("backup")
    start = Path(weights) if weights else find_resume_weights(backup_dir, cfg)
    if start is None:
        raise StepError(f"nothing to resume from: no {cfg.stem}_last.weights, {cfg.stem}.backup or "
                        f"{cfg.stem}_final.weights in {backup_dir}",
                        fix="darknet saves them every 100 iterations (pjreddie) or 1,000 (AlexeyAB, hank-ai); "
                            "start again with %yolo train")
    if max_batches is not None:
        parsed = Cfg.parse(cfg.read_text(encoding="utf-8"))
        parsed.set(parsed.net, "max_batches", int(max_batches))
        atomic_write_text(cfg, parsed.render())
    kwargs: dict[str, Any] = dict(darknet=darknet, data=args.data, cfg=cfg, weights=start, map=args.map,
                                  gpus=args.gpus, backup=args.backup, clear=False, run_dir=run.run_dir,
                                  stop_on_nan=args.stop_on_nan, extra_args=args.extra_args, cwd=args.cwd,
                                  flavor=None if darknet != args.darknet else args.flavor)
    kwargs.update(overrides)
    if reporter is not None:
        reporter.info(_resume_line(run, start, cfg))
    return run, plan_train(**kwargs)


def _resume_line(run: TrainingRun, start: Path, cfg: Path) -> str:
    """Where a resume starts: the weights file's own iteration (its header counts the images seen), and how many
    logged iterations darknet will train again (those after the weights were saved)."""
    at = weights_iteration(start, cfg)
    logged = run.last_iteration or 0
    text = f"resuming {run.name} from {start}"
    if at is None:
        return text + f" (logged up to iteration {logged})"
    text += f" at iteration {at:,} (its header)"
    if logged > at:
        text += f"; iterations {at + 1:,}-{logged:,} were logged after it was saved and are trained again"
    return text
