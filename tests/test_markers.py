"""The conftest hook refuses a test without a project marker, even when ``-m`` would deselect it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.unit


def test_an_unmarked_test_fails_collection(tmp_path: Path) -> None:
    hook = "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"
    (tmp_path / "conftest.py").write_text(hook)
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n\n\n@pytest.mark.unit\ndef test_marked():\n    pass\n\n\n"
        "def test_unmarked():\n    pass\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "unit"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == pytest.ExitCode.USAGE_ERROR, res.stdout + res.stderr
    assert "1 test(s) carry none of the markers" in res.stderr
    assert "test_probe.py::test_unmarked" in res.stderr and "test_marked" not in res.stderr
