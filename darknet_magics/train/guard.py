"""What watches a training run besides its sinks: the drive mirror, checkpoints on a cadence, a time budget and
patience on mAP (issue 24: Colab takes the VM and nothing is lost).

The options are planned once (`GuardOptions`, from `%yolo train`'s ``sync= save_every= keep= time= until=
patience=``) and saved as the run folder's ``guard.json``, so that the keeper of a background run, a foreground run
and a resume on a new VM all read the same thing. `Guard` is fed darknet's output and asked `should_stop()` by the
runner's poll (the keeper's in the background, the kernel's in the foreground); `finish()` copies out and syncs the
last weights once darknet has ended. Pure planning (`parse_budget`, `numbered_to_prune`, `checkpoint_due`) is apart
from the files.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional

from ..data.cfg_weights import read_weights_header
from ..output import problems
from ..report import Reporter
from ..setup import colab
from ..errors import DarknetMagicsError
from ..fileio import atomic_write_text, remove_if_exists
from ..jsonread import load_json
from ..output.events import Iteration, MapResult, WeightsSaved
from ..output.logparse import LogParser
from .drivesync import Mirror, ago, copy_verified, read_fields

__all__ = ["GUARD_NAME", "GuardOptions", "Guard", "parse_budget", "parse_until", "numbered_to_prune",
           "checkpoint_due", "read_options"]

GUARD_NAME = "guard.json"
STATE_NAME = "sync-state.json"   # the mirror's last result, for the kernel's status line (not mirrored)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
_POLL_S = 0.5


def parse_budget(text: str) -> float:
    """``11h30m``, ``90m``, ``45s``, ``2h`` -> seconds; DarknetMagicsError names the option and the fix."""
    m = _DURATION.match(str(text).strip().lower())
    if not text or not m or not any(m.groups()):
        raise DarknetMagicsError(f"time={text!r:.40} is not a duration",
                                 fix="write hours, minutes and seconds such as time=11h30m, time=90m or time=45s")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0 or seconds > 7 * 24 * 3600:
        raise DarknetMagicsError(f"time={text} is {seconds:,} s", fix="give a budget between 1 s and 7 days")
    return float(seconds)


def parse_until(text: str, now: datetime) -> float:
    """``until=HH:MM`` (UTC, as Colab's VM clock) -> the epoch second darknet must stop by (tomorrow when that time
    has passed today)."""
    m = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", str(text).strip())
    if not m:
        raise DarknetMagicsError(f"until={text!r:.40} is not a time of day",
                                 fix="write until=HH:MM (24-hour, UTC), e.g. until=23:30")
    at = now.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return at.timestamp()


def checkpoint_due(iteration: int, save_every: int, last_copied: Optional[int]) -> bool:
    """A numbered checkpoint is due when `iteration` has reached a multiple of `save_every` past the last one
    copied (darknet saves `_last` every 100 iterations: the copy is the first save at or after each multiple)."""
    if iteration <= 0:
        return False
    if last_copied is None:
        return iteration >= save_every
    return iteration // save_every > last_copied // save_every


def numbered_to_prune(names: list[str], stem: str, keep: Optional[int]) -> list[str]:
    """Of the weights file names in a backup folder, the numbered ones (``STEM_N.weights``) beyond the `keep`
    newest; `_last`, `_best`, `_final` and other files are never pruned."""
    if keep is None:
        return []
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)\.weights$")
    numbered = sorted((int(m.group(1)), n) for n in names if (m := pattern.match(n)))
    return [n for _, n in numbered[:-keep]] if keep > 0 else [n for _, n in numbered]


@dataclass(frozen=True)
class GuardOptions:
    """What watches a run: `drive` (the drive folder mirrored to; None: no mirror), `sync_s`, `save_every` and
    `keep` (numbered checkpoints), `deadline` (epoch seconds darknet must have stopped by), `patience` (mAP
    evaluations without a better mAP), the cfg's stem and batch (a weights header counts images seen)."""

    backup_dir: Path
    stem: str
    batch: int = 1
    drive: Optional[Path] = None
    sync_s: float = 60.0
    save_every: Optional[int] = None
    keep: Optional[int] = None
    budget_s: Optional[float] = None
    deadline: Optional[float] = None
    patience: Optional[int] = None
    flavor: Optional[str] = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.drive, self.save_every, self.keep, self.budget_s, self.deadline,
                                           self.patience))

    def to_json(self) -> str:
        return json.dumps({"version": 1, "backup_dir": str(self.backup_dir), "stem": self.stem, "batch": self.batch,
                           "drive": str(self.drive) if self.drive else None, "sync_s": self.sync_s,
                           "save_every": self.save_every, "keep": self.keep, "budget_s": self.budget_s,
                           "deadline": self.deadline,
                           "patience": self.patience, "flavor": self.flavor}, indent=1) + "\n"

    def describe(self) -> list[str]:
        lines = []
        if self.drive:
            lines.append(f"darknet writes on local disk; the run reaches {self.drive} as verified, closed files "
                         f"every {self.sync_s:g} s and after every weights save")
        if self.save_every:
            lines.append(f"a numbered checkpoint every {self.save_every:,} iterations"
                         + (f", the {self.keep} newest kept" if self.keep is not None else ""))
        if self.budget_s:
            lines.append(f"darknet stops after {self.budget_s / 3600:.2f} h of this session, with its last weights "
                         "saved and synced (time budget)")
        if self.deadline:
            lines.append("darknet stops by " + datetime.fromtimestamp(self.deadline, timezone.utc)
                         .strftime("%H:%M:%S UTC") + " with its last weights saved and synced (time budget)")
        if self.patience:
            lines.append(f"stops when mAP has not improved for {self.patience} evaluations (patience)")
        return lines


def read_options(run_dir: Path) -> Optional[GuardOptions]:
    """RUN/guard.json, or None when the run has none. A damaged one is a RecordError (file, line): it is data
    from the drive, so paths must be absolute and numbers finite and in range."""
    f = read_fields(Path(run_dir) / GUARD_NAME, {"version", "backup_dir", "stem", "batch", "drive", "sync_s",
                                                 "save_every", "keep", "budget_s", "deadline", "patience", "flavor"})
    if f is None:
        return None
    backup, drive, stem = f.str_("backup_dir") or "", f.str_("drive"), f.str_("stem") or ""
    if not Path(backup).is_absolute() or (drive is not None and not Path(drive).is_absolute()):
        raise f.fail("backup_dir" if not Path(backup).is_absolute() else "drive", "an absolute folder expected")
    if not stem or "/" in stem or stem.startswith("."):
        raise f.fail("stem", f"a cfg name expected, got {stem!r:.80}")
    sync_s = f.number("sync_s", 60.0) or 60.0
    if not 1 <= sync_s <= 86400:
        raise f.fail("sync_s", f"{sync_s} s is outside 1 s to a day")
    return GuardOptions(backup_dir=Path(backup), stem=stem, batch=f.int_("batch", 1, low=1) or 1,
                        drive=Path(drive) if drive else None, sync_s=sync_s,
                        save_every=f.int_("save_every", low=1), keep=f.int_("keep"), budget_s=f.number("budget_s"),
                        deadline=f.number("deadline"),
                        patience=f.int_("patience", low=1), flavor=f.str_("flavor"))


def write_options(run_dir: Path, options: GuardOptions) -> None:
    atomic_write_text(Path(run_dir) / GUARD_NAME, options.to_json())


class Guard:
    """The live part: fed darknet's output (`feed`), polled by the runner (`should_stop`), ended by `finish`.

    `should_stop` returns ``(word, detail)``: ``budget`` or ``patience`` (the keeper's StopReason words), or None.
    """

    def __init__(self, options: GuardOptions, run_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.options, self.run_dir, self.clock = options, Path(run_dir), clock
        self.mirror = Mirror(run_dir, options.drive, every=options.sync_s, clock=clock) if options.drive else None
        # darknet prints "Saving weights to P" before it writes P: P is whole once the next iteration is printed
        self.parser = LogParser(flavor=options.flavor)
        self.saving: list[str] = []
        self.whole: set[str] = set()
        self.best: Optional[float] = None
        self.since_best = 0
        self.last_copied: Optional[int] = None
        self._seen: dict[str, int] = {}
        self._polled = 0.0
        started = clock()
        # an until= that has passed (a resume the next day) is no deadline for this session
        ends = [t for t in (options.deadline, started + options.budget_s if options.budget_s else None)
                if t and t > started]
        self.deadline: Optional[float] = min(ends) if ends else None
        # stop at the first weights save in the budget's last tenth (at most 15 min), else at the deadline itself
        self.soft = self.deadline - min(900.0, 0.1 * max(0.0, self.deadline - started)) if self.deadline else None
        self.saved_after_soft = False
        self._worker: Optional[threading.Thread] = None

    # ---------------------------------------------------------------------------------------------- output
    def feed(self, text: str) -> None:
        """darknet's output: weights saves (whole at the next iteration), mAP results (patience)."""
        for ev in self.parser.feed(text):
            if isinstance(ev, WeightsSaved):
                self.saving.append(os.path.basename(ev.path))
            elif isinstance(ev, Iteration) and self.saving:
                self.whole.update(self.saving)
                self.saving = []
            elif isinstance(ev, MapResult) and ev.map50 == ev.map50:  # nan never improves
                if self.best is None or ev.map50 > self.best:
                    self.best, self.since_best = ev.map50, 0
                else:
                    self.since_best += 1

    # ---------------------------------------------------------------------------------------------- polling
    def should_stop(self) -> Optional[tuple[str, str]]:
        now = self.clock()
        if now - self._polled < _POLL_S:
            return None
        self._polled = now
        whole, self.whole = self.whole, set()  # each "it is whole" is used once: darknet rewrites _last in place
        saved = self._new_save(stable_s=1.0, whole=whole)
        if saved is not None or (self.mirror is not None and self.mirror.due()):
            self._in_background(saved, whole)
        o = self.options
        if o.patience and self.since_best >= o.patience:
            return "patience", f"{o.patience} mAP evaluations without a better mAP (best {100 * (self.best or 0):.2f}%)"
        if self.deadline is not None and self.soft is not None:
            if saved is not None and now >= self.soft:
                self.saved_after_soft = True
            if self.saved_after_soft or now >= self.deadline:
                return "budget", datetime.fromtimestamp(self.deadline, timezone.utc).strftime("%H:%M:%S UTC")
        return None

    def _resume_file(self) -> Optional[Path]:
        stem, folder = self.options.stem, self.options.backup_dir
        found = [p for p in (folder / f"{stem}_last.weights", folder / f"{stem}.backup") if p.is_file()]
        return max(found, key=lambda p: p.stat().st_mtime) if found else None

    def _in_background(self, saved: Optional[Path], whole: set[str]) -> None:
        """The copies (checkpoint, drive) in a thread: a slow or hung Drive must not keep the runner from reading
        darknet's output (a full pty stops darknet). A round still running skips this one; the next catches up."""
        if self._worker is not None and self._worker.is_alive():
            if saved is not None:
                self._seen.pop(saved.name, None)  # not handled: seen again at the next look
            self.whole |= whole  # and still known whole then
            return
        self._worker = threading.Thread(target=self._work, args=(saved, whole), name="guard", daemon=True)
        self._worker.start()

    def _work(self, saved: Optional[Path], whole: set[str]) -> None:
        if saved is not None:
            self._checkpoint(saved)
        if self.mirror is not None:
            self._sync(whole=whole)

    def _new_save(self, stable_s: float, whole: frozenset[str] | set[str] = frozenset()) -> Optional[Path]:
        """The resume file (`_last`, ``.backup``) when darknet saved it since the last look and it is whole."""
        latest = self._resume_file()
        if latest is None:
            return None
        try:
            stat = latest.stat()
        except OSError:
            return None
        if self._seen.get(latest.name) == stat.st_mtime_ns:
            return None
        if latest.name not in whole and self.clock() - stat.st_mtime < stable_s:
            return None  # not yet known whole: darknet may still be writing it
        self._seen[latest.name] = stat.st_mtime_ns
        return latest

    def _checkpoint(self, latest: Path) -> None:
        """Copy out a numbered checkpoint when `latest` crossed the cadence; prune beyond `keep`."""
        o = self.options
        if o.save_every and o.flavor != "hank-ai":  # hank-ai saves them itself (-saveweights N)
            at = self._iteration(latest)
            if at is not None and checkpoint_due(at, o.save_every, self.last_copied):
                try:
                    copy_verified(latest, o.backup_dir / f"{o.stem}_{at}.weights")
                    self.last_copied = at
                except OSError as exc:  # the local disk is full: darknet's own save fails too and says so
                    print(f"guard: checkpoint {o.stem}_{at}.weights not written: {exc.strerror or exc}",
                          file=sys.stderr, flush=True)
        self._prune()

    def _iteration(self, weights: Path) -> Optional[int]:
        try:
            with open(weights, "rb") as handle:
                header = read_weights_header(handle.read(20))
        except OSError:
            return None
        return int(header.seen) // max(1, self.options.batch) if header else None

    def _prune(self) -> None:
        o = self.options
        try:
            names = os.listdir(o.backup_dir)
        except OSError:
            return
        for name in numbered_to_prune(names, o.stem, o.keep):
            remove_if_exists(o.backup_dir / name)
            if self.mirror is not None:
                self.mirror.forget(f"{os.path.relpath(o.backup_dir / name, self.run_dir)}")

    def _sync(self, force: bool = False, whole: frozenset[str] | set[str] = frozenset()) -> None:
        assert self.mirror is not None
        self.mirror.sync(force=force, whole={os.path.relpath(self.options.backup_dir / n, self.run_dir)
                                             for n in whole})
        try:
            atomic_write_text(self.run_dir / STATE_NAME, json.dumps(
                {"last_ok": self.mirror.last_ok, "failing": self.mirror.failing,
                 "failed_since": self.mirror.failed_since}) + "\n")
        except OSError:
            pass  # the local disk is full: darknet's own output says so

    def finish(self) -> None:
        """darknet has ended: the last checkpoint and a last sync of everything (nothing is being written now)."""
        if self._worker is not None:
            self._worker.join()
        saved = self._new_save(stable_s=0.0)
        if saved is not None:
            self._checkpoint(saved)
        if self.mirror is not None:
            self._sync(force=True)


def sync_status(run_dir: Path, clock: Callable[[], float] = time.time) -> Optional[str]:
    """The status line of a mirrored run (``drive: synced 14 s ago``), from the mirror's last record; None when
    the run is not mirrored."""
    try:
        value, _ = load_json(Path(run_dir) / STATE_NAME)
    except (OSError, DarknetMagicsError):
        return None
    if not isinstance(value, dict):
        return None
    last, failing, since = value.get("last_ok"), value.get("failing"), value.get("failed_since")
    now = clock()
    if isinstance(failing, str) and failing:
        when = f"last synced {ago(now - last)} ago" if isinstance(last, (int, float)) else "nothing synced yet"
        lag = ago(now - since) if isinstance(since, (int, float)) else "a while"
        return "drive: failing: " + problems.drive_sync_failing(failing[:120], lag, when).describe()
    if isinstance(last, (int, float)):
        return f"drive: synced {ago(now - last)} ago"
    return "drive: not synced yet"


def open_guard(run_dir: Path) -> Optional[Guard]:
    """The guard of a run folder with a ``guard.json`` (None without one, or with one that does nothing). A damaged
    guard.json is ignored with a line on stderr: it must not stop darknet, which the user asked to train."""
    try:
        options = read_options(run_dir)
    except DarknetMagicsError as exc:
        print(f"guard: {exc}", file=sys.stderr, flush=True)
        return None
    return Guard(options, run_dir) if options is not None and options.active else None


def final_sync(run_dir: Path) -> Optional[str]:
    """After the verdict (run.json, the chart): everything to the drive once more; the status line, or None for a
    run that is not mirrored."""
    guard = open_guard(run_dir)
    if guard is None or guard.mirror is None:
        return None
    guard._sync(force=True)
    return sync_status(run_dir)


def verdict(stopped_by: Optional[str], last: Optional[int]) -> Optional[tuple[bool, str]]:
    """How a run the guard stopped ended: (finished, message), or None when the guard did not stop it. Pure."""
    if not stopped_by:
        return None
    if stopped_by.startswith("time budget reached"):
        return False, (f"{stopped_by} at iteration {last or 0}; the last weights are saved (and synced to the drive "
                       "when it is used): continue with %yolo resume (on a new VM: the set-up cell, then "
                       "%yolo resume)")
    if stopped_by.startswith("stopped early:"):
        return True, f"{stopped_by} at iteration {last or 0}; the best weights are backup/*_best.weights"
    return None


def after_verdict(run_dir: Path, reporter: Reporter) -> None:
    """The hook training and background call once a session is judged: the verdict reaches the drive, the status
    line is shown (a warning with the fix when the drive failed), and in Colab the drive's upload cache is flushed
    (`colab.flush_drive`: Colab's only way to push it before the VM goes) and the drive mounted again."""
    line = final_sync(run_dir)
    if line is None:
        return
    (reporter.warn if line.startswith("drive: failing") else reporter.info)(line)
    if colab.in_colab():
        try:
            colab.flush_drive()
            reporter.info("the drive's upload cache was flushed (Colab uploads lazily otherwise); it stays mounted")
        except Exception as exc:  # Colab's own failure: the verified copies are on the drive's cache already
            reporter.warn(f"flushing the drive failed ({exc}); the files are synced, their upload may lag: run the "
                          "set-up cell's `drive` line again if the drive is no longer mounted")


LOCAL_RUNS = "local-runs"  # under the session's fast local disk (/content in Colab)


def local_twin(drive_dir: Path, local_root: Path, *, sync: Optional[int], on_drive: bool) -> Optional[Path]:
    """The local folder darknet writes a run in, when the run is mirrored to `drive_dir`: with ``sync=N`` (N > 0),
    or by default when the run folder is on Colab's mounted Drive (`on_drive`); None keeps today's behaviour (the
    run written where it is: a workspace on local disk). ``sync=0`` turns the mirror off."""
    if sync == 0 or (sync is None and not on_drive):
        return None
    twin = Path(local_root) / LOCAL_RUNS / Path(drive_dir).name
    twin.mkdir(parents=True, exist_ok=False)  # the drive folder's name is new: so is its twin
    return twin


def plan_options(*, backup_dir: Path, cfg: Path, flavor: Optional[str], drive: Optional[Path],
                 sync: Optional[int], save_every: Optional[int], keep: Optional[int], time_budget: Optional[str],
                 until: Optional[str], patience: Optional[int], map_on: bool, now: datetime) -> GuardOptions:
    """The guard of a new run from `%yolo train`'s options; DarknetMagicsError names the option and the fix."""
    if patience is not None and (patience < 1 or not map_on or flavor == "pjreddie"):
        raise DarknetMagicsError(f"patience={patience} needs mAP while training" if patience >= 1 else
                                 "patience=0 never waits", fix="add `map` (AlexeyAB or hank-ai darknet: pjreddie's "
                                                              "computes no mAP) and give patience=K with K >= 1")
    if keep is not None and save_every is None and flavor not in ("alexeyab", "hank-ai"):
        raise DarknetMagicsError(f"keep={keep} bounds numbered checkpoints, and this run makes none",
                                 fix="add save_every=N (a numbered checkpoint every N iterations)")
    if save_every is not None and save_every < 1:
        raise DarknetMagicsError("save_every=0 saves nothing", fix="give save_every=N with N >= 1, or leave it out")
    from ..data.cfg import Cfg

    try:
        batch = int(float(Cfg.parse(Path(cfg).read_text(encoding="utf-8", errors="replace")).net.get("batch") or 1))
    except (OSError, ValueError):
        batch = 1
    return GuardOptions(backup_dir=Path(backup_dir), stem=Path(cfg).stem, batch=max(1, batch), drive=drive,
                        sync_s=float(sync or 60), save_every=save_every, keep=keep,
                        budget_s=parse_budget(time_budget) if time_budget else None,
                        deadline=parse_until(until, now) if until else None, patience=patience, flavor=flavor)


def vm_left_warning(uptime_s: float) -> str:
    """The one warning of a Colab run without a budget: how long this VM has run, and Colab's limit."""
    left = max(0.0, 12 * 3600 - uptime_s)
    return (f"no time budget: this VM has run {ago(uptime_s)}, and Colab ends a VM after at most 12 h (free tier; "
            f"sooner when idle), so about {ago(left)} are left at best. Add time=11h (or until=HH:MM) to stop with "
            "the last weights saved and synced")
