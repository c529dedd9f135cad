"""Shared fixtures: a real IPython shell with the extension loaded, and where the captured logs live."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests derandomized (the same examples every run, so a red CI is reproducible); a developer's
# run explores new random examples each time (that is how two event-order bugs of the parser were found).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A test run started in the background by a non-interactive shell (`pytest ... &`, nohup) inherits SIGINT ignored:
# Python then installs no KeyboardInterrupt handler (interrupt_main() does nothing, an interrupt test hangs) and
# the children inherit the ignore (darknet would not stop on SIGINT). Give the run the handler a terminal gives it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# `drive` puts its space-free links in /content on Colab-like machines, and /content is Colab's path, not ours to
# litter: every test's links (kernels and subprocesses inherit it) go to one folder of this run. The tests of the
# default places unset it themselves.
if not os.environ.get("DARKNET_MAGICS_LINKS"):
    import tempfile

    os.environ["DARKNET_MAGICS_LINKS"] = tempfile.mkdtemp(prefix="darknet_magics-test-links-")

# What the tests read lives in tests/fixtures (copied from ../shared, see tests/fixtures/README.md), so a fresh
# clone passes with nothing beside it. Only the darknet *sources* stay outside: tests needing them skip by name.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOGS = FIXTURES / "darknet-logs"
REAL_LOGS = FIXTURES / "real-logs"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SOURCE_TOOL = Path(os.environ.get("DARKNET_SOURCE_TOOL", SHARED / "tools" / "darknet-source"))
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


@contextmanager
def paused_test_timer():
    """A build or the trained model (minutes on two cores, once per checkout, or waited for while the other
    environment makes it) does not count against the timeout of the test that happens to need it first: pytest-timeout's SIGALRM timer is stopped during it and re-armed with what was left.
    The build's commands have their own timeout (an hour)."""
    left, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left:
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout




def _builds_another_flavor(module) -> bool:
    """The module runs AlexeyAB's or hank-ai's darknet, built (minutes) or restored by tests/builds.py."""
    return module.__name__ == "test_flavors_live" or hasattr(module, "flavor_binary")


# scripts/test runs two environments side by side and each `once` test in one of them: the first takes all but
# these modules, the second these (chosen by their measured minutes, so both end at about the same time).
ONCE_IN_SECOND = frozenset({"test_drive", "test_exports", "test_safenames", "test_faults", "test_packaging",
                            "test_eval_browser", "test_live", "test_live_browser", "test_run_record",
                            "test_setup_cell"})


def _once_share(item) -> int:
    return 1 if item.module.__name__ in ONCE_IN_SECOND else 0


def pytest_collection_modifyitems(config, items) -> None:
    """Modules with tests that run another flavor's darknet go last (whole modules, so that their module fixtures
    are made once): scripts/test builds those flavors in the background meanwhile. Tests marked `once` skip (with
    the reason) in the environment that does not run them (DARKNET_MAGICS_ONCE_SHARE="INDEX ENV0 ENV1": this
    environment's index and both names; unset, as in a run of one environment, every test runs)."""
    items.sort(key=lambda item: _builds_another_flavor(item.module))  # stable: the order inside a module is kept
    share = os.environ.get("DARKNET_MAGICS_ONCE_SHARE", "").split()
    if len(share) != 3:
        return
    mine, envs = int(share[0]), share[1:]
    for item in items:
        if item.get_closest_marker("once") and _once_share(item) != mine:
            item.add_marker(pytest.mark.skip(
                reason=f"marked once: runs in the {envs[_once_share(item)]} environment of this run (darknet, make "
                       "or the OS decide it, not the Python libraries' versions)"))


@pytest.fixture
def ip(tmp_path, monkeypatch):
    """A real `InteractiveShell` with darknet_magics loaded, working in a fresh folder; unloaded afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "darknet_magics")
    yield shell
    shell.run_line_magic("unload_ext", "darknet_magics")
    from darknet_magics import magics

    magics.forget(shell)


def run_cell(shell, text: str):
    """Run a cell; return the ExecutionResult (its error_in_exec says how it ended)."""
    return shell.run_cell(text, store_history=False)


@pytest.fixture(scope="session")
def debian_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's darknet source (pjreddie's, with its real Makefile), unpacked once per session."""
    if not SOURCE_TOOL.exists():
        pytest.skip(f"needs the darknet sources: {SOURCE_TOOL} not found (../shared/tools is not beside the checkout)")
    dest = tmp_path_factory.mktemp("debian") / "darknet"
    p = subprocess.run([str(SOURCE_TOOL), str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"could not fetch Debian's darknet source: {p.stderr.strip()[-300:]}")
    return dest


@pytest.fixture(scope="session")
def origin_repo(debian_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That source as a local git repository, in a folder whose name has a space, a quote and ';'."""
    repo = tmp_path_factory.mktemp("origin") / "src repo; it's" / "darknet"
    shutil.copytree(debian_source, repo)
    _git("init", "-q", "-b", "master", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "debian source", cwd=repo)
    _git("tag", "v0", cwd=repo)
    return repo


# The trained model of `trained_model`: the demo's easy recipe (synth.DEMO_*), 200 iterations instead of the demo's
# 300 (a third less of the session's time; 200 already find about half the boxes at mAP@0.50).
from darknet_magics.synth import DEMO_CFG, DEMO_DATASET as TRAINED_DATASET  # noqa: E402

TRAINED_CFG = {**DEMO_CFG, "max_batches": 200}


# Outside the checkout, as the flavors' compiler cache (tests/builds.py): CI's clone is new every run and the machine
# is not, and the weights depend only on the recipe and the darknet binary, which the key holds.
TRAINED_CACHE = Path(os.environ.get("DARKNET_MAGICS_TEST_CACHE")
                     or Path.home() / ".cache" / "darknet_magics" / "tests") / "trained-model"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory):
    """A yolov3-tiny trained by Debian's darknet on the generated boxes (64 px, 1 class) long enough to find them:
    (folder, obj.data, cfg, weights). The validation list is the 8 images not trained on.

    Trained once per machine: the weights are kept in TRAINED_CACHE under a key of the recipe and the darknet
    binary (its size and mtime); on 2 busy cores training takes minutes.
    """
    import hashlib
    import json

    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.synth import make_dataset

    darknet, template = Path("/usr/bin/darknet"), Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
    if not darknet.exists() or not template.exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    root = tmp_path_factory.mktemp("trained")
    ds = make_dataset(root / "ds", **TRAINED_DATASET)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in ds.images[:-8]))
    (root / "valid.txt").write_text("".join(f"{p}\n" for p in ds.images[-8:]))
    (root / "backup").mkdir()
    data = root / "obj.data"
    data.write_text(f"classes=1\ntrain={root}/train.txt\nvalid={root}/valid.txt\nnames={ds.folder}/obj.names\n"
                    f"backup={root}/backup\n")
    cfg = root / "tiny.cfg"
    cfg.write_text(make_cfg(template.read_text(), 1, **TRAINED_CFG))
    stat = darknet.stat()
    key = hashlib.sha256(json.dumps([TRAINED_DATASET, TRAINED_CFG, cfg.read_text(), stat.st_size, stat.st_mtime_ns],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cached = TRAINED_CACHE / key
    TRAINED_CACHE.mkdir(parents=True, exist_ok=True)
    # scripts/test runs two environments side by side: the second waits for the first's training, then copies it
    with open(TRAINED_CACHE / ".lock", "w") as lock, paused_test_timer():
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cached / "tiny_final.weights").is_file():
            proc = subprocess.run([str(darknet), "detector", "train", str(data), str(cfg)], cwd=root,
                                  capture_output=True, text=True, timeout=1700)
            assert (root / "backup" / "tiny_final.weights").exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
            scratch = TRAINED_CACHE / f".{key}.{os.getpid()}"
            shutil.copytree(root / "backup", scratch, ignore=shutil.ignore_patterns("*.backup"))
            os.replace(scratch, cached) if not cached.exists() else shutil.rmtree(scratch)
    for weights in cached.glob("*.weights"):
        shutil.copyfile(weights, root / "backup" / weights.name)
    return root, data, cfg, root / "backup" / "tiny_final.weights"
