"""The import direction of the three layers: ``fam`` (library) <- ``tasks`` (Prefect tasks and
adapters) <- ``flows`` (compositions of tasks). The library imports no orchestrator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.imports import ROOT, imported_names, python_files

pytestmark = pytest.mark.unit

ORCHESTRATION = ("tasks", "flows", "prefect", "prefect_dask", "mlflow", "great_expectations", "dvc")


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    found = {}
    for path in python_files(package):
        bad = _top(imported_names(path)) & set(forbidden)
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_library_imports_no_orchestration():
    assert _offenders("fam", ORCHESTRATION) == {}


def test_tasks_never_import_flows():
    assert _offenders("tasks", ("flows",)) == {}


def _task_definitions(path: Path) -> list[str]:
    """Functions decorated with Prefect's ``@task`` (bare or called) in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Name) and target.id == "task":
                    out.append(node.name)
    return out


def test_flows_only_compose_tasks():
    """Flows define no tasks and call the library only through tasks (settings and errors aside)."""
    allowed_fam = {"fam", "fam.config", "fam.errors"}
    for path in python_files("flows"):
        where = str(path.relative_to(ROOT))
        assert _task_definitions(path) == [], f"{where} defines tasks; they belong in tasks/"
        fam_imports = {n for n in imported_names(path) if n.split(".")[0] == "fam"}
        assert fam_imports <= allowed_fam | {f"{m}.{a}" for m in allowed_fam for a in _attrs(m)}, where


def _attrs(module: str) -> set[str]:
    # `from fam.errors import UserError` names fam.errors.UserError: an attribute, not a module
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return set()
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }


def test_the_scanner_sees_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import mlflow\n    from tasks import lineage\n")
    assert _top(imported_names(probe)) == {"mlflow", "tasks"}


def test_the_validation_and_report_stages_start_without_torch():
    # the main job starts a GX or MLflow stage several times; torch's import (~1.5-2 s on 2 cores)
    # belongs to the commands that run a network, not to the ones that check files and keys
    import subprocess
    import sys

    modules = "tasks.stages, tasks.mlflow_lineage, fam.keys, fam.artifacts"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
