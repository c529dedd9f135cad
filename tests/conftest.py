"""Shared fixtures: a real IPython shell with the extension loaded, and where the shared logs live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
LOGS = SHARED / "darknet-logs"


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

    magics._loaded.clear()


def run_cell(shell, text: str):
    """Run a cell; return the ExecutionResult (its error_in_exec says how it ended)."""
    return shell.run_cell(text, store_history=False)
