"""The wheel: built from a copy of the source, without setuptools warnings, with the shipped models inside."""

import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

# setuptools' complaint about data folders that are not packages, old wording and new.
PACKAGING_WARNING = re.compile(r"absent from the `packages` configuration|as data is deprecated")


@pytest.mark.slow
def test_wheel_builds_quietly_and_ships_the_models(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "setup.py", "README.md"):
        shutil.copy(REPO / name, source)
    shutil.copytree(REPO / "tf_stacksr", source / "tf_stacksr", ignore=shutil.ignore_patterns("__pycache__"))
    # --no-build-isolation: the installed setuptools, so the test runs offline.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", ".",
                             "-w", str(tmp_path / "dist")], cwd=source, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert not PACKAGING_WARNING.search(output), PACKAGING_WARNING.search(output).group(0)

    (wheel,) = (tmp_path / "dist").glob("tf_stacksr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "tf_stacksr" / "weights").glob("*/*")
               if p.name in ("generator.npz", "config.json")}
    assert len(shipped) >= 8 and shipped <= names, sorted(shipped - names)
    modules = {str(p.relative_to(REPO)) for p in (REPO / "tf_stacksr").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert not any("__pycache__" in n or n.startswith(("tests/", "tools/", "bench/")) for n in names)
