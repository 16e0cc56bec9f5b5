"""The code base stays ruff-clean (rules in pyproject.toml; ruff comes with the [test] extra)."""

import subprocess
import sys

from conftest import REPO_ROOT


def test_ruff_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
