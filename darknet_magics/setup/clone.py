"""Get darknet's source: clone or update a git repository at a ref, with git never waiting for a password."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..errors import DarknetMagicsError, StepError
from ..fileio import file_in_the_way
from ..report import Reporter

DEFAULT_URL = "https://github.com/AlexeyAB/darknet"



@dataclass(frozen=True)
class CloneResult:
    """Where darknet is and at which commit; `action` says whether anything changed."""

    path: Path
    commit: str
    action: Literal["cloned", "updated", "unchanged"]
    url: str = DEFAULT_URL
    ref: Optional[str] = None


def git(args: list[str], cwd: Optional[Path] = None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # GIT_TERMINAL_PROMPT=0: a private or mistyped URL must fail, not wait for a password nobody can type.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", env=env,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise StepError(f"git {args[0]} failed", details=(p.stderr or p.stdout).strip()[-2000:])
    return p


def is_git_root(path: Path) -> bool:
    """True when `path` is the top of a git work tree (not merely inside another repository)."""
    if not (path / ".git").exists():
        return False
    p = git(["rev-parse", "--show-toplevel"], path, check=False)
    return p.returncode == 0 and Path(p.stdout.strip()).resolve() == path.resolve()


def _checkout_argv(into: Path, ref: str) -> list[str]:
    return ["git", "-C", str(into), "checkout", "--quiet", "--detach", ref]


def _check_clone_args(url: str, ref: Optional[str], into: Path) -> None:
    """Refuse values git would read as options (``--upload-pack=...``), and a FILE where the clone folder goes."""
    if url.startswith("-"):
        raise DarknetMagicsError(f"the clone URL {url!r} starts with '-', which git would read as an option",
                                 fix="give a URL (https://...) or a path (./-name for a folder named like that)")
    if ref is not None and (ref.startswith("-") or not ref.strip()):
        raise DarknetMagicsError(f"ref={ref!r} is not a branch, tag or commit (it starts with '-' or is empty)",
                                 fix="give a branch, tag or commit, e.g. ref=master")
    blocker = file_in_the_way(into)
    if blocker is not None:
        raise DarknetMagicsError(f"cannot clone into {into}: {blocker} is a file, not a folder",
                                 fix=f"give into= another folder, or remove the file {blocker}")


def clone_commands(url: Optional[str], ref: Optional[str], into: Path) -> list[list[str]]:
    """The git commands `clone` would run (for a dry run); argv lists, nothing is run."""
    url = url or DEFAULT_URL
    into = Path(into)
    _check_clone_args(url, ref, into)
    if is_git_root(into):
        cmds = [["git", "-C", str(into), "fetch", "--tags", "origin"]]
        if ref:
            cmds.append(_checkout_argv(into, ref))
        else:
            cmds.append(["git", "-C", str(into), "merge", "--ff-only", "@{upstream}"])
        return cmds
    cmds = [["git", "clone", "--", url, str(into)]]
    if ref:
        cmds.append(_checkout_argv(into, ref))
    return cmds


def _resolve_ref(into: Path, ref: str) -> str:
    """Commit for `ref`: a remote branch first (so a fetched branch moves), then a tag or sha."""
    for cand in (f"origin/{ref}", ref):
        p = git(["rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}"], into, check=False)
        if p.returncode == 0:
            return p.stdout.strip()
    raise DarknetMagicsError(f"ref {ref!r} not found in {into}", fix="give a branch, tag or commit of that repository")


def _reset_our_makefile(into: Path) -> None:
    # Our patched Makefile would block a checkout; the original is in git and make re-applies the flags.
    if (into / "Makefile.orig").exists():
        git(["checkout", "--quiet", "--", "Makefile"], into, check=False)


def clone(url: Optional[str], ref: Optional[str], into: Path, reporter: Reporter) -> CloneResult:
    """Clone `url` into `into` at `ref`, or fetch and check out `ref` when `into` is already a clone.

    `url` may be a local path or a file:// URL. Returns the commit now checked out.
    """
    url = url or DEFAULT_URL
    into = Path(into)
    _check_clone_args(url, ref, into)
    if into.exists() and not is_git_root(into):
        if any(into.iterdir()):
            raise DarknetMagicsError(f"{into} exists and is not a git clone",
                                     fix="give another folder, or remove this one")
    if is_git_root(into):
        before = git(["rev-parse", "HEAD"], into).stdout.strip()
        reporter.info(f"updating {into} (git fetch)")
        git(["fetch", "--quiet", "--tags", "origin"], into)
        if ref:
            target = _resolve_ref(into, ref)
        else:
            up = git(["rev-parse", "--verify", "--quiet", "@{upstream}"], into, check=False)
            target = up.stdout.strip() if up.returncode == 0 else before
        if target != before:
            _reset_our_makefile(into)
            git(["checkout", "--quiet", "--detach", target] if ref else ["merge", "--quiet", "--ff-only", target],
                 into)
        commit = git(["rev-parse", "HEAD"], into).stdout.strip()
        action: Literal["cloned", "updated", "unchanged"] = "updated" if commit != before else "unchanged"
    else:
        reporter.info(f"cloning {url} into {into}")
        into.parent.mkdir(parents=True, exist_ok=True)
        git(["clone", "--quiet", "--", url, str(into)])  # `--`: nothing after it is an option
        if ref:
            git(["checkout", "--quiet", "--detach", _resolve_ref(into, ref)], into)
        commit = git(["rev-parse", "HEAD"], into).stdout.strip()
        action = "cloned"
    reporter.info(f"darknet at {commit[:12]} ({action})")
    return CloneResult(path=into, commit=commit, action=action, url=url, ref=ref)
