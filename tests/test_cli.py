"""The command lines share one user-error handling: ``error: <what to do>`` on stderr, status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fam.cli import cli
from fam.cli.common import USER_ERROR_EXIT_CODE, Command, key_options, persons_option, quiet_option
from fam.errors import InputError
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("entry", ["fam", "tasks.stages"])
def test_python_m_entry_points_report_a_user_error_without_a_traceback(tmp_path: Path, entry: str) -> None:
    """``fam`` and the DVC stage commands share the handler (and --key-file from key_options)."""
    missing = tmp_path / "no-such.fam-key"
    (tmp_path / "in").mkdir()
    args = {
        "fam": ["key", "fingerprint", "--key-file", str(missing)],
        "tasks.stages": [
            "validate",
            "release",
            str(tmp_path),
            "--aligned",
            str(tmp_path / "in"),
            "--key-file",
            str(missing),
        ],
    }[entry]
    res = subprocess.run(
        [sys.executable, "-m", entry, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
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


def test_shared_options_and_the_error_handler_are_declared_once() -> None:
    """Commands under fam/, tasks/ and flows/ take them from fam.cli.common instead of redeclaring."""
    shared = ROOT / "fam" / "cli" / "common.py"
    declarations = (
        '"--params"',
        '"--set"',
        '"--key-file"',
        '"--key-env"',
        '"--research-seed"',
        '"--person"',
        '"--persons"',
        '"--quiet"',
        '"--no-progress"',
        "except UserError",
    )
    found = [
        f"{path.relative_to(ROOT)}: {d}"
        for package in ("fam", "tasks", "flows")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != shared
        for d in declarations
        if d in path.read_text()
    ]
    assert found == []


def _probe() -> click.Command:
    @click.command(cls=Command)
    @persons_option
    @quiet_option
    def probe(persons: list[str] | None, quiet: bool) -> None:
        click.echo(f"{persons} {quiet}")

    return probe


def test_one_spelling_for_person_selection_and_quiet_old_ones_work_with_a_note() -> None:
    probe = _probe()
    res = CliRunner().invoke(probe, ["--person", "Ann,Bo", "--person", "Cy", "--person", "Ann", "--quiet"])
    assert (res.exit_code, res.stdout, res.stderr) == (0, "['Ann', 'Bo', 'Cy'] True\n", "")
    assert CliRunner().invoke(probe, []).stdout == "None False\n"
    old = CliRunner().invoke(probe, ["--persons", "Ann,Bo", "--no-progress"])
    assert old.exit_code == 0 and old.stdout == "['Ann', 'Bo'] True\n"
    assert old.stderr.splitlines() == [
        "note: --persons is deprecated; use --person NAME (repeatable, or NAME,NAME)",
        "note: --no-progress is deprecated; use --quiet",
    ]
    shown = CliRunner().invoke(probe, ["--help"]).stdout
    assert "--person NAME" in shown and "--quiet" in shown
    assert "--persons" not in shown and "--no-progress" not in shown


@pytest.mark.parametrize(
    ("command", "selects"), [("align", True), ("invert", True), ("protect", True), ("evaluate", False)]
)
def test_every_command_spells_person_selection_and_quiet_alike(command: str, selects: bool) -> None:
    cmd = cli.get_command(click.Context(cli), command)
    options = {o for p in cmd.params for o in p.opts if not getattr(p, "hidden", False)}
    hidden = {o for p in cmd.params for o in p.opts if getattr(p, "hidden", False)}
    assert "--quiet" in options and "--no-progress" in hidden
    assert ("--person" in options) is selects and ("--persons" in hidden) is selects


def _commands(help_text: str) -> set[str]:
    return {line.split()[0] for line in help_text.split("Commands:")[1].splitlines() if line.strip()}


def test_plugins_join_the_group_their_entry_point_name_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """``audit`` joins ``fam``, ``key.revoke`` joins ``fam key``; ``fam`` imports neither to list them."""
    from tests.helpers.plugins import use_declared_plugins

    use_declared_plugins(monkeypatch)
    top = _commands(CliRunner().invoke(cli, ["--help"]).stdout)
    assert "audit" in top and not {"revoke", "key.revoke"} & top
    assert _commands(CliRunner().invoke(cli, ["key", "--help"]).stdout) == {
        "new",
        "fingerprint",
        "check",
        "revoke",
    }
    res = CliRunner().invoke(cli, ["key", "revoke", "--reason", "x"])
    assert res.exit_code == 2 and "give the key to revoke" in res.stderr
    # the command module itself imports neither MLflow nor Prefect
    probe = "import sys, tasks.key_revoke; print(sorted({'mlflow', 'prefect'} & set(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "[]", res.stderr
