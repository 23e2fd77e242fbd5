"""fam.key_check and ``fam key check`` / ``fam key new --apart-from`` on tiny models and stub faces."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from fam.cli import cli
from fam.config import Params, load_params
from fam.errors import ConfigError, InputError
from fam.key_check import KeyFaces, check_keys, draw_apart, key_faces_from_params, linking_threshold
from fam.keys import Key, load_key_file, new_key, research_key
from tests.helpers.tiny_models import TINY_SETTINGS

pytestmark = pytest.mark.unit


class StubFaces(KeyFaces):
    """Key faces with chosen embeddings, by fingerprint: the verdicts are known in advance."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed(self, keys: list[Key]) -> torch.Tensor:
        rows = torch.tensor([self.vectors[k.fingerprint] for k in keys], dtype=torch.float32)
        return torch.nn.functional.normalize(rows, dim=1)


def test_every_pair_is_scored_and_those_at_the_threshold_are_linked(tiny_params: Params) -> None:
    keys = [research_key(s) for s in range(4)]
    faces = key_faces_from_params(tiny_params)
    result = check_keys(keys, faces, threshold=0.5, source="given")
    assert [(p.a, p.b) for p in result.pairs] == [
        (keys[i].fingerprint, keys[j].fingerprint)
        for i, j in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    ]
    assert all(p.linked == (p.cosine >= 0.5) for p in result.pairs)
    # one key's face does not depend on the keys checked beside it
    alone = check_keys(keys[:2], faces, threshold=0.5, source="given").pairs[0]
    assert alone.cosine == pytest.approx(result.pairs[0].cosine, abs=1e-6)
    assert len(check_keys(keys, faces, -1.0, "given").linked) == 6


def test_a_check_needs_two_different_keys(tiny_params: Params) -> None:
    faces = key_faces_from_params(tiny_params)
    with pytest.raises(InputError, match="two keys or more"):
        check_keys([research_key(1)], faces, 0.9, "given")
    with pytest.raises(InputError, match="the same key is given twice"):
        check_keys([research_key(1), research_key(1)], faces, 0.9, "given")


def test_the_threshold_is_the_identity_models_calibration_unless_given(tiny_params: Params) -> None:
    assert linking_threshold(load_params(), 64) == (0.9312, "dlib@64 impostor cosine at FMR 1e-3")
    assert linking_threshold(tiny_params, 32, given=0.8) == (0.8, "given")
    with pytest.raises(ConfigError, match=r"no impostor calibration.*or pass --threshold"):
        linking_threshold(tiny_params, 32)
    with pytest.raises(InputError, match="not a cosine"):
        linking_threshold(tiny_params, 32, given=1.5)


def test_a_reissued_key_skips_draws_whose_face_matches_a_given_one() -> None:
    old, twin, other = research_key(0), research_key(1), research_key(2)
    faces = StubFaces({old.fingerprint: [1, 0], twin.fingerprint: [1, 0.1], other.fingerprint: [0.6, 0.8]})
    draws = iter([twin, other])
    found = draw_apart([old], faces, threshold=0.9, draw=lambda: next(draws))
    assert found.key is other and found.draws == 2 and found.nearest == pytest.approx(0.6)


def test_a_generator_whose_faces_all_match_is_reported_not_looped_on() -> None:
    old, twin = research_key(0), research_key(1)
    faces = StubFaces({old.fingerprint: [1, 0], twin.fingerprint: [1, 0.1]})
    with pytest.raises(InputError, match=r"3 fresh keys all drew a face .* \(closest 0\.9950 >= 0\.9000\)"):
        draw_apart([old], faces, threshold=0.9, max_draws=3, draw=lambda: twin)
    with pytest.raises(InputError, match="at least one key file"):
        draw_apart([], faces, threshold=0.9)


def _tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SETTINGS))
    return path


def test_key_check_prints_fingerprints_and_exits_1_when_a_pair_links(tmp_path: Path) -> None:
    params = _tiny_params_file(tmp_path)
    args = ["key", "check", "--research-seed", "1", "--research-seed", "2", "--params", str(params)]
    linked = CliRunner().invoke(cli, [*args, "--threshold", "-1"])
    assert linked.exit_code == 1, linked.output
    fp1, fp2 = research_key(1).fingerprint, research_key(2).fingerprint
    assert f"{fp1}  {fp2}  cosine " in linked.output and "LINKED" in linked.output
    assert linked.output.rstrip().endswith("1 of 1 pairs linked")
    apart = CliRunner().invoke(cli, [*args, "--threshold", "1"])
    assert apart.exit_code == 0 and "apart" in apart.output and "0 of 1 pairs linked" in apart.output
    missing = CliRunner().invoke(cli, [*args])  # the tiny identity model has no calibration
    assert missing.exit_code == 2 and "pass --threshold" in missing.output


def test_key_check_takes_key_files_and_variables_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [tmp_path / f"{name}.fam-key" for name in ("a", "b")]
    for file in files:
        CliRunner().invoke(cli, ["key", "new", "--out", str(file)])
    monkeypatch.setenv("FAM_KEY_B", files[1].read_text().split()[-1])
    common = ["key", "check", "--threshold", "1", "--params", str(_tiny_params_file(tmp_path))]
    by_file = CliRunner().invoke(cli, [*common, "--key-file", str(files[0]), "--key-file", str(files[1])])
    by_env = CliRunner().invoke(cli, [*common, "--key-file", str(files[0]), "--key-env", "FAM_KEY_B"])
    assert by_file.exit_code == by_env.exit_code == 0
    assert by_file.output == by_env.output  # the same keys, whichever way they came


def test_key_new_apart_from_writes_a_private_key_and_never_prints_material(tmp_path: Path) -> None:
    params = _tiny_params_file(tmp_path)
    revoked = tmp_path / "revoked.fam-key"
    assert CliRunner().invoke(cli, ["key", "new", "--out", str(revoked)]).exit_code == 0
    out = tmp_path / "reissued.fam-key"
    args = ["key", "new", "--out", str(out), "--apart-from", str(revoked), "--params", str(params)]
    res = CliRunner().invoke(cli, [*args, "--threshold", "1"])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    new = load_key_file(out)
    assert f"fingerprint {new.fingerprint}" in res.output and "1 draw(s)" in res.output
    assert new != load_key_file(revoked)
    for file in (out, revoked):  # neither key's material reaches the output
        assert file.read_text().split()[-1] not in res.output
    again = CliRunner().invoke(cli, [*args, "--threshold", "1"])  # never overwritten, checked first
    assert again.exit_code == 2 and "already exists" in again.output


def test_new_key_is_fresh_secret_material() -> None:
    a, b = new_key(), new_key()
    assert a.kind == "secret" and a != b
