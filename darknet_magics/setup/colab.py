"""The only module that imports `google.colab`: where we run, and mounting Google Drive.

Everything else asks `in_colab()` and calls `mount()`, so tests can stand in a small `google.colab`
package (tests/colab_stub) and the rest of the code never knows the difference.
"""
from __future__ import annotations

import importlib.util
import os
import sys

# Colab's kernel sets these; a laptop that merely has the `google-colab` package installed does not.
_COLAB_ENV_VARS = ("COLAB_RELEASE_TAG", "COLAB_BACKEND_VERSION", "COLAB_JUPYTER_IP")


def _colab_importable() -> bool:
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        # `google` may be a namespace package without `colab` (e.g. protobuf's), or a broken install.
        return False


def _colab_shell() -> bool:
    # Without importing IPython: look at the shell only if IPython is already loaded.
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and type(shell).__module__.startswith("google.colab")


def in_colab() -> bool:
    """True when `google.colab` is importable and this process is Colab's kernel.

    "Colab's kernel" means Colab's environment variables are set (``COLAB_RELEASE_TAG``) or the running
    IPython shell is Colab's own class. Tests set the variable and put a stub package on ``sys.path``.
    """
    if not _colab_importable():
        return False
    return any(os.environ.get(v) for v in _COLAB_ENV_VARS) or _colab_shell()


_mounted_at: list[str] = []  # where this kernel mounted the drive (flush_drive mounts it there again)


def mount(mountpoint: str) -> None:
    """Mount Google Drive at `mountpoint` (Colab asks the user to authorize on the first call)."""
    from google.colab import drive  # the one import of google.colab in the package

    drive.mount(mountpoint)
    _mounted_at[:] = [mountpoint]


def flush_drive() -> None:
    """Push Colab's Drive upload cache to Drive now (closed files on the mounted Drive are otherwise uploaded lazily,
    and lost with the VM), and keep the drive mounted: Colab's only flush is ``drive.flush_and_unmount``, so the
    drive is mounted again where it was (the next cell may read it). Raises what Colab raises."""
    from google.colab import drive

    drive.flush_and_unmount()
    drive.mount(_mounted_at[0] if _mounted_at else "/content/drive")


def download(path: str) -> None:
    """Offer `path` for download in the browser (Colab's ``files.download``); only meaningful in Colab.

    Raises:
        FileNotFoundError: `path` is not a file (Colab's own check, made here first so the message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Cannot find file: {path}")
    from google.colab import files  # the other import of google.colab in the package

    files.download(path)
