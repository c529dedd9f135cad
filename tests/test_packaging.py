"""The package as users get it: a built wheel (not the editable checkout) installs into a fresh venv, and
`%load_ext darknet_magics` works from it, with every directive module inside."""
from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.once, pytest.mark.timeout(900)]


def test_wheel_installs_and_loads_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("darknet_magics-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "darknet_magics/directives/train.py" in names and "darknet_magics/language/parse.py" in names
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    script = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "import darknet_magics, pathlib\n"
        "assert 'site-packages' in darknet_magics.__file__, darknet_magics.__file__\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'darknet_magics')\n"
        "r = ip.run_cell('%%darknet --dry-run\\nworkspace /tmp/x\\nset a=1\\n')\n"
        "assert r.error_in_exec is None, r.error_in_exec\n"
        "ip.run_line_magic('yolo', 'help train')\n"
    )
    ran = subprocess.run([str(py), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "(dry run: nothing was run)" in ran.stdout and "usage: %yolo train" in ran.stdout
