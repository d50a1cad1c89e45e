"""The package builds quietly: every config folder is declared, so setuptools warns about none of them."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_wheel_builds_without_warnings_and_ships_every_config_and_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
                             str(REPO)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "BuildBackendWarning" not in output and "would be ignored" not in output, output[-3000:]
    (wheel,) = tmp_path.glob("skinexp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name for name in names if name.endswith(".yaml")}
    expected = {f"skinexp/conf/{path.relative_to(REPO / 'conf')}" for path in (REPO / "conf").rglob("*.yaml")}
    assert shipped == expected and "skinexp/conf/hydra/default.yaml" in shipped
    modules = {str(path.relative_to(REPO)) for path in (REPO / "skinexp").rglob("*.py")}
    assert modules - set(names) == set() and "skinexp/training/budget.py" in modules
