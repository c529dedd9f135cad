"""The same directives from a terminal, for training on a cloud VM inside tmux rather than in a notebook.

    python -m darknet_magics run setup.darknet        # a file of %%darknet directives and %yolo lines
    python -m darknet_magics run setup.darknet --dry-run
    python -m darknet_magics log train.log --csv out/  # parse a darknet log into CSV files
    python -m darknet_magics demo                      # the end-to-end demo (see README)

Same plan, same steps, same logs and history files as the magics; progress is redrawn on one terminal line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .directives import GRAMMAR
from .setup.runtime import detect_platform
from .errors import DarknetMagicsError
from .executor import Executor
from .language import parse_cell
from .output.logs import parse_log
from .report import ConsoleReporter
from .session import Session
from .synth import DEMO_CFG


def _run(args: argparse.Namespace) -> int:
    text = Path(args.file).read_text()
    session = Session(platform=detect_platform())
    plan = parse_cell(text, GRAMMAR, known=session.known())
    namespace: dict = {}
    Executor(session, ConsoleReporter(), namespace=namespace).run_plan(plan, dry_run=args.dry_run)
    return 0


def _log(args: argparse.Namespace) -> int:
    log = parse_log(Path(args.path))
    print(f"flavor: {log.flavor}; {len(log.iterations)} iterations, {len(log.maps)} mAP results, "
          f"{len(log.weights)} weights saved, {len(log.problems)} problems")
    for problem in log.problems.itertuples():
        print(f"  [{problem.severity}] {problem.message}" + (f" (fix: {problem.fix})" if problem.fix else ""))
    if args.csv:
        out = Path(args.csv)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("iterations", "maps", "class_ap", "weights", "problems"):
            getattr(log, name).to_csv(out / f"{name}.csv", index=False)
        print(f"wrote CSV files to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), iterations=args.iterations)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darknet_magics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a file of %%%%darknet directives and %%yolo lines")
    p.add_argument("file")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the plan and run nothing")
    p.set_defaults(func=_run)
    p = sub.add_parser("log", help="parse a darknet training log")
    p.add_argument("path")
    p.add_argument("--csv", metavar="DIR", help="write the dataframes as CSV files into DIR")
    p.set_defaults(func=_log)
    p = sub.add_parser("demo", help="train real darknet on a generated dataset and write an HTML report")
    p.add_argument("--out", default="out/demo", help="output folder (default: ./out/demo)")
    p.add_argument("--iterations", type=int, default=DEMO_CFG["max_batches"],
                   help=f"training iterations (default: {DEMO_CFG['max_batches']}, enough to find the boxes)")
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DarknetMagicsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
