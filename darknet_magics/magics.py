"""`%%darknet` and `%yolo`: thin magics that parse, plan, run and show.

The work is elsewhere (directives -> executor -> steps). Here: IPython's argument parsing for the magic lines,
turning our errors into messages without tracebacks, and binding results into the user's namespace.
"""
from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

try:  # IPython >= 7.3: keep IPython from expanding {name} before our placeholders see it
    from IPython.core.magic import no_var_expand
except ImportError:  # pragma: no cover - older IPython
    def no_var_expand(func: Any) -> Any:
        return func

from . import directives
from .errors import DarknetMagicsError, StepError
from .executor import Executor, Session


def _show_without_traceback(exc: StepError) -> StepError:
    # IPython and ipykernel render an exception with `_render_traceback_` as the lines it returns: the user
    # sees the diagnosis, and the cell still counts as failed, so "run all" stops here.
    lines = ["darknet_magics: " + str(exc)]
    exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return exc


@magics_class
class DarknetMagics(Magics):
    """Holds one `Session` per kernel: what `drive`, `workspace`, `clone`, `make` and training runs established."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        from . import environment

        self.session = Session(platform=environment.detect_platform())

    def _executor(self) -> Executor:
        if self.session.platform == "terminal":
            # A terminal IPython has no display handles to update: redraw progress on one line instead.
            from .report import ConsoleReporter

            reporter = ConsoleReporter()
        else:
            from .notebook import NotebookReporter

            reporter = NotebookReporter()
        return Executor(self.session, reporter, namespace=self.shell.user_ns)

    def _user_names(self) -> set[str]:
        # Python variables can fill placeholders too ({data_dir} from `data_dir = "..."` in a code cell).
        return {k for k, v in self.shell.user_ns.items() if not k.startswith("_") and isinstance(v, (str, int, float))}

    @magic_arguments()
    @argument("--dry-run", "-n", action="store_true",
              help="print the plan (the commands and file edits each line would make) and run nothing")
    @no_var_expand
    @cell_magic
    def darknet(self, line: str, cell: str) -> None:
        """Set up, build and stage for darknet: one directive per line.

        Lines are ``DIRECTIVE ARG... KEY=VALUE...`` with shell-like quoting, ``#`` comments and ``{name}``
        placeholders. All lines are checked before any runs.
        """
        args = parse_argstring(self.darknet, line)  # its errors are UsageErrors already
        try:
            plan = directives.parse_cell(cell, known=self.session.known() | self._user_names())
            self._executor().run_plan(plan, dry_run=args.dry_run)
        except StepError as exc:
            raise _show_without_traceback(exc) from None
        except DarknetMagicsError as exc:
            raise UsageError(str(exc)) from None

    @no_var_expand
    @line_magic
    def yolo(self, line: str) -> Any:
        """Train and inspect darknet models: ``%yolo SUBCOMMAND ...``; ``%yolo SUBCOMMAND --help`` for one."""
        words = line.split()
        if not words or words[0] in ("--help", "-h", "help"):
            print(_yolo_overview())
            return None
        if words[0] in directives.YOLO_SPECS and any(w in ("--help", "-h") for w in words[1:]):
            print(directives.YOLO_SPECS[words[0]].help())
            return None
        try:
            step = directives.parse_yolo(line, known=self.session.known() | self._user_names())
            if step is None:
                return None
            self._executor().run_step(step)
        except StepError as exc:
            raise _show_without_traceback(exc) from None
        except DarknetMagicsError as exc:
            raise UsageError(str(exc)) from None
        return None


def _yolo_overview() -> str:
    return "usage: %yolo SUBCOMMAND ...   (%yolo SUBCOMMAND --help for details)\n\nsubcommands:\n" + \
        directives.overview("yolo")


def _darknet_overview() -> str:
    return ("\nDirectives (one per line):\n" + directives.overview("darknet") +
            "\n\nPlaceholders: {drive} {workspace} {darknet} {bin} {dataset} {weights} (set by the directives above),"
            " {local} {cwd} {home}, and any `set NAME=VALUE`.\n"
            "\n%yolo subcommands (in their own lines, outside the cell):\n" + directives.overview("yolo"))


# Real help for `%%darknet?` and `%yolo?`: the generated directive reference, appended to the docstrings.
DarknetMagics.darknet.__doc__ = (DarknetMagics.darknet.__doc__ or "") + _darknet_overview()
DarknetMagics.yolo.__doc__ = (DarknetMagics.yolo.__doc__ or "") + "\n" + _yolo_overview()

_loaded: dict[int, DarknetMagics] = {}


def register(ipython: Any) -> None:
    """Register the magics on `ipython` (called by ``%load_ext``; ``%reload_ext`` calls it again)."""
    magics = DarknetMagics(ipython)
    previous = _loaded.get(id(ipython))
    if previous is not None:
        magics.session = previous.session  # %reload_ext keeps what the session established
    _loaded[id(ipython)] = magics
    ipython.register_magics(magics)


def unregister(ipython: Any) -> None:
    """Remove `%%darknet` and `%yolo` (called by ``%unload_ext``)."""
    _loaded.pop(id(ipython), None)
    manager = ipython.magics_manager
    manager.magics["cell"].pop("darknet", None)
    manager.magics["line"].pop("yolo", None)
    manager.registry.pop("DarknetMagics", None)
