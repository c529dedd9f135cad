"""A run's plan and outcome as saved in ``run.json``: a versioned, typed record, validated on every read.

A run folder may come from someone else's Drive, so `read_record` trusts nothing in it: types, finite numbers,
strings without control characters, the log inside the run folder, darknet's argv made only of the words our
planner writes (``detector train DATA CFG [WEIGHTS] [-dont_show] [-map] [-gpus G] [-clear]`` and the ``args=``
flags this flavor knows). Schema 1 (run.json without ``schema``, the layout before this module) still loads; the
writer writes schema 2. The binary a record names is not run on its say-so: `confirm_binary` wants the user's
``bin=`` or this session's darknet to agree.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..setup.binary import check_darknet_args
from ..errors import DarknetMagicsError, Problem, StepError
from ..setup.flavor import Flavor, flavor_of
from ..jsonread import Fields, RecordError, load_json

__all__ = ["SCHEMA", "RunStatus", "RunArgs", "RunRecord", "RecordError", "read_record", "record_from_json",
           "check_train_argv", "confirm_binary", "RUN_JSON", "LOG_NAME"]

SCHEMA = 2
RUN_JSON = "run.json"
LOG_NAME = "train.log"
_FIX = ("restore run.json from a copy, or start again with `%yolo train` (the log and backup/ stay usable: "
        "`%yolo log DIR/train.log`)")


class RunStatus(str, enum.Enum):
    """How a run (or the last session of it) stands. A str, so run.json keeps the plain words."""

    RUNNING = "running"
    FINISHED = "finished"
    FINISHED_CRASHED = "finished-crashed-on-exit"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    STOPPED = "stopped"  # a log read back that ended without a verdict

    def __str__(self) -> str:
        return self.value

    @property
    def ok(self) -> bool:
        return _OK[self]


_OK = {RunStatus.RUNNING: False, RunStatus.FINISHED: True, RunStatus.FINISHED_CRASHED: True,
       RunStatus.FAILED: False, RunStatus.INTERRUPTED: False, RunStatus.DIVERGED: False, RunStatus.STOPPED: False}
assert set(_OK) == set(RunStatus), "every RunStatus needs an entry in _OK"


def _path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None


@dataclass(frozen=True)
class RunArgs:
    """What a run was planned with (what `resume` plans again from). `backup` is the ``backup=`` the user gave or
    the run's own folder (None: the user's obj.data names `backup_dir`)."""

    darknet: Optional[Path] = None
    data: Optional[Path] = None
    cfg: Optional[Path] = None
    weights: Optional[Path] = None
    map: bool = False
    gpus: Optional[str] = None
    backup: Optional[Path] = None
    backup_dir: Optional[Path] = None
    clear: bool = False
    stop_on_nan: bool = True
    extra_args: tuple[str, ...] = ()
    cwd: Optional[Path] = None
    flavor: Optional[Flavor] = None

    def data_arg(self, run_dir: Path) -> Optional[Path]:
        """The obj.data darknet was given: the run folder's copy when the run keeps its own weights folder (it names
        that folder), else the user's own file (`plan_train`'s rule)."""
        return Path(run_dir) / "obj.data" if self.backup is not None else self.data

    @property
    def resumable(self) -> bool:
        """A run planned by `%yolo train` (a log read back with `%yolo log` has no darknet arguments)."""
        return self.darknet is not None and self.data is not None and self.cfg is not None

    def to_json(self) -> dict[str, Any]:
        def text(p: Optional[Path]) -> Optional[str]:
            return str(p) if p is not None else None

        return {"darknet": text(self.darknet), "data": text(self.data), "cfg": text(self.cfg),
                "weights": text(self.weights), "map": self.map, "gpus": self.gpus, "backup": text(self.backup),
                "backup_dir": text(self.backup_dir), "clear": self.clear, "stop_on_nan": self.stop_on_nan,
                "extra_args": list(self.extra_args), "cwd": text(self.cwd),
                "flavor": self.flavor.value if self.flavor else None}

    @classmethod
    def from_fields(cls, f: Fields) -> "RunArgs":
        f.unknown({"darknet", "data", "cfg", "weights", "map", "gpus", "backup", "backup_dir", "clear",
                   "stop_on_nan", "extra_args", "cwd", "flavor"})
        try:
            flavor = flavor_of(f.str_("flavor"))
        except ValueError as exc:
            raise f.fail("flavor", str(exc)) from None
        gpus = f.str_("gpus")
        if gpus is not None and not all(part.strip().isdigit() for part in gpus.split(",")):
            raise f.fail("gpus", f"GPU ids such as 0,1 expected, got {gpus!r:.80}")
        return cls(darknet=_path(f.str_("darknet")), data=_path(f.str_("data")), cfg=_path(f.str_("cfg")),
                   weights=_path(f.str_("weights")), map=f.bool_("map"), gpus=gpus, backup=_path(f.str_("backup")),
                   backup_dir=_path(f.str_("backup_dir")), clear=f.bool_("clear"),
                   stop_on_nan=f.bool_("stop_on_nan", True), extra_args=f.strs("extra_args", limit=64),
                   cwd=_path(f.str_("cwd")), flavor=flavor)


# the keys a session's record may have, and how each is read (the kernel adds them as the session goes)
_SESSION_READERS = {
    "argv": lambda f, k: list(f.strs(k)), "started": lambda f, k: f.str_(k), "ended": lambda f, k: f.str_(k),
    "weights": lambda f, k: f.str_(k), "start_iteration": lambda f, k: f.int_(k), "log_offset": lambda f, k: f.int_(k),
    "status": lambda f, k: _status(f, k).value if f.obj.get(k) is not None else None,
    "returncode": lambda f, k: f.int_(k, low=-(1 << 31)), "signal": lambda f, k: f.int_(k, low=1),
    "seconds": lambda f, k: f.number(k), "watchdog": lambda f, k: f.str_(k, lines=True),
    "last_iteration": lambda f, k: f.int_(k), "message": lambda f, k: f.str_(k, lines=True),
    "keeper": lambda f, k: _pids(f.obj_(k)), "owner": lambda f, k: _pids(f.obj_(k)),
}


def _pids(f: Optional[Fields]) -> Optional[dict]:
    """A session's record of the processes that ran it: pids, their start times, the boot."""
    if f is None:
        return None
    f.unknown({"keeper_pid", "darknet_pid", "boot_id", "pid", "start"})
    return {"keeper_pid": f.int_("keeper_pid", low=1), "darknet_pid": f.int_("darknet_pid", low=1),
            "boot_id": f.str_("boot_id"), "pid": f.int_("pid", low=1), "start": f.int_("start")}


def _status(f: Fields, key: str) -> RunStatus:
    word = f.str_(key)
    try:
        return RunStatus(word)
    except ValueError:
        raise f.fail(key, f"{word!r:.40} is no run status (known: {', '.join(s.value for s in RunStatus)})") from None


def _session(f: Fields) -> dict[str, Any]:
    f.unknown(set(_SESSION_READERS))
    out = {k: reader(f, k) for k, reader in _SESSION_READERS.items() if k in f.obj}
    return {k: v for k, v in out.items() if v is not None or k in ("returncode", "signal", "ended")}


@dataclass
class RunRecord:
    """run.json: the run's name, status, argv, arguments and sessions (schema 2)."""

    name: str
    status: RunStatus
    argv: tuple[str, ...]
    args: RunArgs
    max_batches: Optional[int] = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    schema: int = SCHEMA
    run_dir: Optional[Path] = None  # where it is written (a copy elsewhere moves its own files along)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "run_dir": str(self.run_dir) if self.run_dir else None, "name": self.name,
                "status": self.status.value, "argv": list(self.argv),
                "args": self.args.to_json(), "max_batches": self.max_batches, "log": LOG_NAME,
                "sessions": self.sessions, "message": self.message}


_TOP = {"schema", "version", "name", "status", "argv", "args", "max_batches", "log", "sessions", "message",
        "run_dir"}


def record_from_json(value: Any, run_dir: Path, file: Path, text: str = "") -> RunRecord:
    """A parsed run.json as a RunRecord (pure); RecordError names the file, the line and the fix."""
    f = Fields(value, file, "run.json", text)
    f.unknown(_TOP)
    schema = f.int_("schema", 1) if "schema" in f.obj else f.int_("version", 1)
    if schema is None or schema < 1 or schema > SCHEMA:
        raise f.fail("schema", f"{schema} is not a schema this darknet_magics reads (1 to {SCHEMA}): a newer "
                               "version wrote it; upgrade darknet_magics")
    name = f.str_("name") or Path(run_dir).name
    if not name.isprintable() or len(name) > 200:
        raise f.fail("name", f"{name[:80]!r} is no run name")
    old_dir = _written_in(f, Path(run_dir))
    args_fields = f.obj_("args")
    args = _relocate(RunArgs.from_fields(args_fields) if args_fields is not None else RunArgs(), old_dir,
                     Path(run_dir))
    argv = _moved_argv(f.strs("argv"), old_dir, Path(run_dir))
    problem = check_train_argv(argv, args, run_dir) if argv or args.resumable else None
    if problem:
        raise f.fail("argv", problem)
    sessions = [_session(s) for s in f.objs("sessions")]
    for s in sessions:
        if s.get("argv"):
            s["argv"] = list(_moved_argv(tuple(s["argv"]), old_dir, Path(run_dir)))
        problem = check_train_argv(s.get("argv") or (), args, run_dir, any_darknet=True) if s.get("argv") else None
        if problem:
            raise f.fail("argv", f"a session's argv: {problem}")
    return RunRecord(name=name, status=_status(f, "status") if "status" in f.obj else RunStatus.FAILED, argv=argv,
                     args=args, max_batches=f.int_("max_batches", low=1), sessions=sessions,
                     message=f.str_("message", "", lines=True) or "", schema=schema)


def _relocate(args: RunArgs, old_dir: Path, run_dir: Path) -> RunArgs:
    """A run's own weights folder is its folder's ``backup/``: a run folder copied, moved or renamed (Drive) uses
    its own, not the one at the place it was written."""
    if args.backup == old_dir / "backup" and args.backup_dir == old_dir / "backup":
        return dataclasses.replace(args, backup=run_dir / "backup", backup_dir=run_dir / "backup")
    return args


def _moved_argv(argv: tuple[str, ...], old_dir: Path, run_dir: Path) -> tuple[str, ...]:
    """The argv with the run's own obj.data copy at its folder's present place."""
    if len(argv) > 3 and argv[3] == str(old_dir / "obj.data"):
        return argv[:3] + (str(run_dir / "obj.data"),) + argv[4:]
    return argv


def _written_in(f: Fields, run_dir: Path) -> Path:
    """The folder the run was written in: schema 2 records it (``run_dir``); schema 1 wrote the log's absolute
    path, which must be a ``train.log`` (the log a run reads is always its present folder's own)."""
    recorded = f.str_("run_dir")
    log = f.str_("log")
    if log is not None and log != LOG_NAME and Path(log).name != LOG_NAME:
        raise f.fail("log", f"{log[:120]!r} is not a run folder's {LOG_NAME} (a run's log never leaves its folder)")
    if recorded:
        return Path(recorded)
    return Path(log).parent if log and Path(log).is_absolute() else run_dir


def read_record(run_dir: Path) -> RunRecord:
    """``RUN_DIR/run.json`` as a RunRecord. A missing file is a DarknetMagicsError; a damaged one a RecordError
    naming the file, the line and the fix."""
    path = Path(run_dir) / RUN_JSON
    try:
        value, text = load_json(path)
    except FileNotFoundError:
        raise DarknetMagicsError(f"{run_dir} is not a run folder (no {RUN_JSON})",
                                 fix="give the folder `%yolo train` wrote under {workspace}/runs") from None
    except RecordError as exc:
        raise RecordError(exc.file, exc.line, exc.what, fix=_FIX) from None
    except OSError as exc:
        raise RecordError(path, None, f"cannot be read ({exc.strerror or exc})", fix=_FIX) from None
    try:
        return record_from_json(value, Path(run_dir), path, text)
    except RecordError as exc:
        raise RecordError(exc.file, exc.line, exc.what, fix=_FIX) from None


_PLAIN_FLAGS = {"-dont_show", "-map", "-clear"}


def check_train_argv(argv: Sequence[str], args: RunArgs, run_dir: Path, *, any_darknet: bool = False
                     ) -> Optional[str]:
    """What is wrong with a recorded training argv, or None: only the words `plan_train` writes for these
    arguments, and ``args=`` flags this flavor knows (a recorded argv is never run, but it names the run's files
    and a re-attach reads the obj.data from it)."""
    argv = list(argv)
    if len(argv) < 5 or argv[1:3] != ["detector", "train"]:
        return f"not a `darknet detector train DATA CFG` command: {' '.join(argv)[:200]!r}"
    if not any_darknet and args.darknet is not None and argv[0] != str(args.darknet):
        return f"its darknet {argv[0][:120]!r} is not the run's ({args.darknet})"
    own_data = argv[3] == str(Path(run_dir) / "obj.data")
    if args.data is not None and argv[3] != str(args.data) and not own_data:
        return f"its obj.data {argv[3][:120]!r} is neither the run's ({args.data}) nor the run folder's copy"
    if args.cfg is not None and argv[4] != str(args.cfg):
        return f"its cfg {argv[4][:120]!r} is not the run's ({args.cfg})"
    rest = argv[5:]
    if rest and not rest[0].startswith("-"):
        if not rest[0].endswith((".weights", ".backup")):
            return f"an argv word the planner never writes: {rest[0][:80]!r} (weights end in .weights or .backup)"
        rest = rest[1:]  # the weights it starts from
    extra = list(args.extra_args)
    while rest and rest != extra:
        word = rest.pop(0)
        if word == "-gpus" and rest:
            rest.pop(0)
        elif word not in _PLAIN_FLAGS:
            return f"an argv word the planner never writes: {word[:80]!r}"
    if extra:
        errors = check_darknet_args(args.flavor.value if args.flavor else None, "train", extra)
        if errors:
            return "args=: " + "; ".join(errors)[:300]
    return None


def confirm_binary(recorded: Optional[Path], given: Optional[Path], session_binary: Optional[Path],
                   recorded_flavor: Optional[Flavor], flavor_of_binary: Any) -> Path:
    """The darknet a resumed run uses: the user's `given` ``bin=``; else the recorded one when this session's
    binary (its `make`, else darknet on PATH) is that very file or, built here, of the same flavor; else a
    DarknetMagicsError: a run.json never picks the program on its own say-so."""
    if given is not None:
        return given
    if recorded is not None and session_binary is not None:
        if _same_file(recorded, session_binary):
            return recorded
        if recorded_flavor is not None and flavor_of_binary(session_binary) == recorded_flavor:
            return session_binary
    message = (f"run.json names the darknet {recorded} and nothing in this session confirms it"
               + (f" (this session's darknet is {session_binary})" if session_binary else ""))
    fix = "name the binary yourself: `%yolo resume DIR bin=PATH` (a run folder from elsewhere may name any program)"
    raise StepError(message, fix=fix, problems=[Problem("unconfirmed-binary", "a run.json does not choose the program to run", fix=fix,
                                                        file=str(recorded) if recorded else None)])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return str(a) == str(b)
