"""The command lines share one user-error handling: ``error: <what to do>`` on stderr, status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fam.cli.common import USER_ERROR_EXIT_CODE, Command, key_options
from fam.errors import InputError
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.unit


def test_python_m_fam_reports_a_user_error_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.fam-key"
    res = subprocess.run(
        [sys.executable, "-m", "fam", "key", "fingerprint", "--key-file", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == USER_ERROR_EXIT_CODE == 2
    assert (
        res.stderr
        == f"error: key file {missing} does not exist; create one with `fam key new --out {missing}`\n"
    )
    assert res.stdout == ""


def test_a_command_of_the_shared_class_turns_user_errors_into_status_2() -> None:
    @click.command(cls=Command)
    @key_options
    def probe(key_file: Path | None, key_env: str | None, research_seed: int | None) -> None:
        raise InputError(f"bad input ({research_seed}); fix it like this")

    res = CliRunner().invoke(probe, ["--research-seed", "7"])
    assert res.exit_code == 2 and res.output == "error: bad input (7); fix it like this\n"
    usage = CliRunner().invoke(probe, ["--key", "00"])  # no option takes key material
    assert usage.exit_code == 2 and "No such option '--key'" in usage.output
