"""Weight registry: a corrupted copy of a model file is refused with the fix in the message;
``fam models`` lists every entry with its status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fam import weights
from fam.cli import cli
from fam.errors import MissingWeightsError
from fam.registry import Registry
from fam.weights import resolve, sha256_file
from fam.weights_catalog import CATALOG


@pytest.mark.model
def test_hash_mismatch_on_a_changed_byte(tmp_path: Path) -> None:
    original = resolve("dlib-shape-predictor-5")
    data = bytearray(original.read_bytes())
    expected = sha256_file(original)
    data[len(data) // 2] ^= 0xFF
    copy = tmp_path / "sp5.dat"
    copy.write_bytes(bytes(data))
    with pytest.raises(MissingWeightsError, match=r"sp5\.dat has sha256 .* expected .*corrupt"):
        resolve("dlib-shape-predictor-5", path=copy, sha256=expected)
    # the unchanged bytes under the same path and pin are accepted
    copy.write_bytes(original.read_bytes())
    assert resolve("dlib-shape-predictor-5", path=copy, sha256=expected) == copy


@pytest.mark.unit
def test_user_entry_without_hash_says_what_to_pin(tmp_path: Path) -> None:
    file = tmp_path / "w.pt"
    file.write_bytes(b"weights")
    with pytest.raises(MissingWeightsError, match="no sha256 is pinned"):
        resolve("arcface-irse50", path=file)
    assert resolve("arcface-irse50", path=file, sha256=sha256_file(file)) == file


@pytest.mark.model
def test_lists_every_entry_with_status() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    for entry in weights.entries():
        assert entry.name in result.output
    assert "dlib-face-recognition-resnet-v1  [present]" in result.output
    assert "arcface-irse50  [user]" in result.output
    assert "license: CC0-1.0" in result.output


@pytest.mark.unit
def test_corrupt_file_fails_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"not the file we pinned")
    entry = weights.WeightEntry(
        name="zz-test-model",
        role="test entry",
        source="project",
        location=str(file),  # absolute: locate() joins it onto fam/ unchanged
        license="CC0",
        sha256="0" * 64,
        how_to_get="reinstall the test package",
    )
    registry: Registry[weights.WeightEntry] = Registry("model file", error=MissingWeightsError)
    for known in [*weights.entries(), entry]:
        registry.register(known.name, known)
    monkeypatch.setattr(weights, "WEIGHTS", registry)
    result = CliRunner().invoke(cli, ["models", "--no-check"])
    assert result.exit_code == 0 and "zz-test-model  [unchecked]" in result.output
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 1
    assert "zz-test-model  [corrupt]" in result.output
    assert "hash mismatch; reinstall the test package" in result.output
    assert "1 model file(s) fail their sha256 check" in result.output


@pytest.mark.unit
def test_fetched_files_are_looked_up_where_their_script_puts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = (Path(__file__).resolve().parent.parent / "scripts" / "fetch_faceres.sh").read_text()
    pins = dict(re.findall(r"\[(faceres\.\w+)\]=([0-9a-f]{64})", script))
    assert set(pins) == {"faceres.json", "faceres.bin"}
    for part, file in (("graph", "faceres.json"), ("weights", "faceres.bin")):
        entry = weights.get(f"faceres-{part}")
        assert entry.source == "fetched" and entry.sha256 == pins[file]  # one pin, in both places
        monkeypatch.setenv("FAM_MODELS_DIR", str(tmp_path / "models"))
        assert weights.locate(entry) == tmp_path / "models" / "faceres" / file
        monkeypatch.delenv("FAM_MODELS_DIR")
        monkeypatch.setenv("FAM_CACHE_DIR", str(tmp_path / "cache"))
        assert weights.locate(entry) == tmp_path / "cache" / "models" / "faceres" / file
        assert weights.status(entry)[0] == "missing"


@pytest.mark.unit
def test_a_package_or_project_entry_needs_its_sha256() -> None:
    with pytest.raises(ValueError, match="'zz' from package needs a sha256"):
        weights.WeightEntry(
            name="zz", role="r", source="package", location="p/x", license="MIT", sha256=None, how_to_get="-"
        )


@pytest.mark.unit
def test_the_catalog_is_complete_without_importing_model_code() -> None:
    # Lineage and `fam models` list the catalog in processes that never build a model.
    code = (
        "import sys; from fam import weights; "
        "print(len(weights.entries())); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('fam.models', 'fam.faces'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's fam
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.split("\n")[:2] == [str(len(CATALOG)), "[]"]
    assert [e.name for e in weights.entries()] == sorted(e.name for e in CATALOG)
    # entries the model modules used to register at import are in the one table
    assert {"stylegan2-ffhq-config-f", "e4e-ffhq-encode", "fam-attr-stats", "farl-ep64"} <= set(
        weights.WEIGHTS.names()
    )


@pytest.mark.unit
def test_fam_models_lists_the_catalog_and_every_registered_name() -> None:
    from fam import recognizers
    from fam.models import factory

    result = CliRunner().invoke(cli, ["models", "--no-check"])
    assert result.exit_code == 0, result.output
    catalog = result.output.split("\nconfigured models")[0]  # then the configured models' files
    listed = [line.split("  [")[0] for line in catalog.splitlines() if "  [" in line]
    assert listed == sorted(e.name for e in CATALOG)
    for entry in CATALOG:
        assert f"source:  {entry.source}: {entry.location}" in result.output
    for role in factory.ROLES:
        assert f"{role}:".ljust(11) + ", ".join(factory.available(role)) in result.output
    assert ", ".join(recognizers.available()) in result.output
