"""`%%darknet` and `%yolo`: thin magics that parse, plan, run and show.

The work is elsewhere (language -> executor -> directives -> domain modules). Here: the magic lines' own flags,
the help text, turning our errors into messages without tracebacks, and the session, which belongs to the magics
instance (``%reload_ext`` hands it to the new instance, so a reload keeps what the cell established).
"""
from __future__ import annotations

from typing import Any, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

try:  # IPython >= 7.3: keep IPython from expanding {name} before our placeholders see it
    from IPython.core.magic import no_var_expand
except ImportError:  # pragma: no cover - older IPython
    def no_var_expand(func: Any) -> Any:
        return func

from .directives import GRAMMAR
from .setup.runtime import detect_platform
from .errors import DarknetMagicsError, StepError
from .executor import Executor
from .language import parse_cell, parse_yolo
from .notebook import CellReporter
from .report import ConsoleReporter, Reporter
from .session import Session

_CELL_FLAGS = {"--dry-run": "dry_run", "-n": "dry_run", "--help": "help", "-h": "help"}


def _show_without_traceback(exc: StepError) -> StepError:
    # IPython and ipykernel render an exception with `_render_traceback_` as the lines it returns: the user
    # sees the diagnosis, and the cell still counts as failed, so "run all" stops here.
    lines = ["darknet_magics: " + str(exc)]
    exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return exc


def _interrupt_in_one_line(exc: KeyboardInterrupt) -> KeyboardInterrupt:
    # Ctrl-C stops the cell (and "run all") as always, but shows one line instead of IPython's frames: what was
    # stopped and kept was said just above it by the step itself.
    run = getattr(exc, "run", None)
    where = f" at iteration {run.last_iteration or 0}; the log and dataframes are kept" if run is not None else ""
    exc._render_traceback_ = lambda: [f"KeyboardInterrupt: stopped{where}"]  # type: ignore[attr-defined]
    return exc


# The help follows the loop a user goes through; a directive added later and not named here is listed under
# "other", so the help never loses one.
_LOOP = (
    ("set-up", ("runtime", "drive", "workspace", "cudnn", "clone", "make", "weights", "set")),
    ("data", ("stage", "data", "check", "anchors", "cfg")),
    ("training", ("train", "resume", "status", "stop", "log", "compare")),
    ("model out", ("map", "test", "video", "export", "show")),
)

YOLO_RUN_HELP = (
    "After a run (%yolo train, resume, log or status), `yolo_run` (or the name given with `as NAME`) holds it:\n"
    "  yolo_run.iterations  one row per iteration: iteration, loss, avg_loss, rate, seconds, images\n"
    "  yolo_run.maps        one row per mAP evaluation: map50, best_map50, precision, recall, f1, avg_iou, tp, fp, fn\n"
    "  yolo_run.class_ap    one row per class and evaluation: name, ap, tp, fp, f1\n"
    "  yolo_run.weights     the weights files darknet saved, by iteration\n"
    "  yolo_run.problems    what went wrong, with its fix; yolo_run.figure the chart; yolo_run.log_path the log")


def _by_stage(language: str) -> str:
    """The directives (``"darknet"``) or subcommands (``"yolo"``) with their usage and summary, by loop stage."""
    specs = GRAMMAR.specs(language)
    lines: list[str] = []
    named: set[str] = set()
    for stage, names in _LOOP + (("other", tuple(specs)),):
        shown = [specs[n] for n in names if n in specs and n not in named]
        named.update(spec.name for spec in shown)
        if shown:
            lines.append(f" {stage}:")
            lines += [f"  {spec.usage()}\n      {spec.summary}" for spec in shown]
    return "\n".join(lines)


def darknet_help() -> str:
    """The help of `%%darknet`: its line flags, every directive, the placeholders, and the %yolo subcommands, in the
    order of the loop (set-up, data, training, model out)."""
    return ("%%darknet [--dry-run]\n    (one directive per line)\n\n"
            "Set up, build and stage for darknet. Lines are DIRECTIVE ARG... KEY=VALUE... with shell-like quoting,\n"
            "# comments and {name} placeholders. Every line is checked before any runs.\n\n"
            "  --dry-run, -n   print the plan (the commands and file edits each line would make) and run nothing\n"
            "  --help, -h      this help\n\n"
            "Directives:\n" + _by_stage("darknet") +
            "\n\nPlaceholders: {drive} {workspace} {darknet} {bin} {dataset} {weights} (set by the directives above),"
            " {local} {cwd} {home}, any `set NAME=VALUE`, and Python variables.\n\n"
            "%yolo subcommands (in their own lines, outside the cell; %yolo help SUBCOMMAND):\n"
            + _by_stage("yolo") + "\n\n" + YOLO_RUN_HELP)


def yolo_help(subcommand: Optional[str] = None) -> str:
    """The help of `%yolo` (in the order of the loop, and what `yolo_run` holds), or of one subcommand."""
    if subcommand:
        return GRAMMAR.yolo[subcommand].help()
    return ("%yolo SUBCOMMAND ...\n\nTrain and inspect darknet models. %yolo help SUBCOMMAND (or %yolo SUBCOMMAND "
            "--help) for one.\n\nSubcommands:\n" + _by_stage("yolo") + "\n\n" + YOLO_RUN_HELP)


@magics_class
class DarknetMagics(Magics):
    """Holds the kernel's `Session`: what `drive`, `workspace`, `clone`, `make` and training runs established."""

    def __init__(self, shell: Any, session: Optional[Session] = None) -> None:
        super().__init__(shell)
        self.session = session or Session(platform=detect_platform())

    def _executor(self) -> Executor:
        # A terminal IPython has no display handles to update: redraw progress on one line instead.
        # In a kernel, output goes to the cell that ran the line even from a background training thread.
        reporter: Reporter = ConsoleReporter() if self.session.platform == "terminal" else CellReporter()
        return Executor(self.session, reporter, namespace=self.shell.user_ns)

    def _known(self) -> set[str]:
        # Python variables can fill placeholders too ({data_dir} from `data_dir = "..."` in a code cell).
        python = {k for k, v in self.shell.user_ns.items() if not k.startswith("_") and isinstance(v, (str, int, float))}
        return self.session.known() | python

    @no_var_expand
    @cell_magic
    def darknet(self, line: str, cell: str) -> None:
        flags = set()
        for word in line.split():
            if word not in _CELL_FLAGS:
                raise UsageError(f"%%darknet: unknown flag {word!r}; it takes --dry-run (-n) and --help (-h)")
            flags.add(_CELL_FLAGS[word])
        if "help" in flags or not cell.strip():
            print(darknet_help())
            return
        try:
            plan = parse_cell(cell, GRAMMAR, known=self._known())
            self._executor().run_plan(plan, dry_run="dry_run" in flags)
        except KeyboardInterrupt as exc:
            raise _interrupt_in_one_line(exc) from None
        except StepError as exc:
            raise _show_without_traceback(exc) from None
        except DarknetMagicsError as exc:
            raise UsageError(str(exc)) from None

    @no_var_expand
    @line_magic("darknet")
    def darknet_line(self, line: str) -> None:
        """One directive on one line (`%darknet runtime`); `%darknet` alone, or with --help, shows the help."""
        words = line.split()
        flags = [w for w in words[:1] if w in _CELL_FLAGS]
        if not words or "--help" in words[:1] or "-h" in words[:1]:
            print(darknet_help())
            return
        body = line.split(None, 1)[1] if flags else line
        self.darknet(" ".join(flags), body + "\n")

    @no_var_expand
    @line_magic
    def yolo(self, line: str) -> None:
        words = line.split()
        if not words or words[0] in ("--help", "-h", "help"):
            sub = words[1] if len(words) > 1 and words[1] in GRAMMAR.yolo else None
            print(yolo_help(sub))
            return
        if words[0] in GRAMMAR.yolo and any(w in ("--help", "-h") for w in words[1:]):
            print(yolo_help(words[0]))
            return
        try:
            step = parse_yolo(line, GRAMMAR, known=self._known())
            if step is not None:
                self._executor().run_step(step)
        except KeyboardInterrupt as exc:
            raise _interrupt_in_one_line(exc) from None
        except StepError as exc:
            raise _show_without_traceback(exc) from None
        except DarknetMagicsError as exc:
            raise UsageError(str(exc)) from None


# `%%darknet?` and `%yolo?` show these (plain text: IPython prints a docstring as it is).
DarknetMagics.darknet.__doc__ = darknet_help()
DarknetMagics.darknet_line.__doc__ = darknet_help()
DarknetMagics.yolo.__doc__ = yolo_help()


def empty_cell_to_line_magic(lines: list[str]) -> list[str]:
    """An input transformer: a cell that is only its ``%%darknet ...`` line becomes the line magic ``%darknet ...``.

    IPython refuses a cell magic whose body is empty before the magic sees it; `%%darknet --help` (or a bare
    `%%darknet`) in a cell of its own is asking for the help, which the line magic shows.
    """
    text = [ln for ln in lines if ln.strip()]
    if len(text) == 1 and text[0].lstrip().startswith("%%darknet") and \
            text[0].lstrip()[len("%%darknet"):][:1] in ("", " ", "\t", "\n"):
        return [text[0].replace("%%darknet", "%darknet", 1)]
    return lines


def register(ipython: Any) -> None:
    """Register the magics on `ipython` (called by ``%load_ext``; ``%reload_ext`` calls it again)."""
    previous = ipython.magics_manager.registry.get("DarknetMagics")
    session = previous.session if isinstance(previous, Magics) and hasattr(previous, "session") else None
    ipython.register_magics(DarknetMagics(ipython, session))
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and empty_cell_to_line_magic not in cleanup:
        cleanup.append(empty_cell_to_line_magic)


def unregister(ipython: Any) -> None:
    """Remove `%%darknet` and `%yolo` (called by ``%unload_ext``). The instance stays in IPython's registry
    until a load replaces it, so that ``%reload_ext`` (unload, then load) keeps the session."""
    manager = ipython.magics_manager
    manager.magics["cell"].pop("darknet", None)
    manager.magics["line"].pop("darknet", None)
    manager.magics["line"].pop("yolo", None)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and empty_cell_to_line_magic in cleanup:
        cleanup.remove(empty_cell_to_line_magic)


def forget(ipython: Any) -> None:
    """Drop the kept session: the next ``%load_ext`` starts with a fresh one, as a new kernel (or VM) would."""
    ipython.magics_manager.registry.pop("DarknetMagics", None)
