from __future__ import annotations

import hashlib
import os
import pickle
import stat

import pytest
import torch

from fam.errors import KeyMaterialError
from fam.keys import KEY_FILE_HEADER, Key, key_latent, key_noise, load_key, new_key_file, research_key

pytestmark = pytest.mark.unit


def test_new_key_file_is_private_and_loads(tmp_path):
    path = tmp_path / "k.fam-key"
    k = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    material = bytes.fromhex(path.read_text().split()[-1])
    assert len(material) * 8 >= 128
    assert load_key(key_file=path) == k
    with pytest.raises(KeyMaterialError, match="never overwritten"):
        new_key_file(path)


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "k"
    new_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        load_key(key_file=path)


def test_short_or_malformed_key_material_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORT", "00" * 8)
    with pytest.raises(KeyMaterialError, match="at least 128"):
        load_key(env_var="SHORT")
    monkeypatch.setenv("BAD", "not hex at all")
    with pytest.raises(KeyMaterialError, match="hexadecimal"):
        load_key(env_var="BAD")
    with pytest.raises(KeyMaterialError, match="exactly one"):
        load_key()


def _material(label: str) -> bytes:
    """Fixed key material that looks random (tests must be reproducible)."""
    return hashlib.sha256(label.encode()).digest()


def test_key_never_revealed(monkeypatch):
    secret = _material("never revealed").hex()
    monkeypatch.setenv("FAM_KEY", secret)
    k = load_key(env_var="FAM_KEY")
    for text in (repr(k), str(k), k.fingerprint, str(k.describe())):
        assert secret not in text and secret.upper() not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(k)
    # errors name the source, never the material
    monkeypatch.setenv("FAM_KEY", secret[:20])
    with pytest.raises(KeyMaterialError) as info:
        load_key(env_var="FAM_KEY")
    assert secret[:20] not in str(info.value)


TRIVIAL_KEYS = {
    "all zero": bytes(32),
    "all 0xff": b"\xff" * 32,
    "one byte repeated": b"A" * 16,
    "counter": bytes(range(32)),
    "counting down by 3": bytes((200 - 3 * i) % 256 for i in range(32)),
    "block repeated": bytes.fromhex("deadbeef") * 8,
    "half repeated": _material("half")[:16] * 2,
    "zeros and a one": bytes(31) + b"\x01",
    "too short": _material("short")[:8],
}


@pytest.mark.parametrize("material", TRIVIAL_KEYS.values(), ids=TRIVIAL_KEYS.keys())
def test_trivially_guessable_key_material_refused_without_revealing_it(tmp_path, monkeypatch, material):
    path = tmp_path / "weak.fam-key"
    path.write_text(f"{KEY_FILE_HEADER}\n{material.hex()}\n")
    os.chmod(path, 0o600)
    monkeypatch.setenv("WEAK_KEY", material.hex())
    for source in ({"key_file": path}, {"env_var": "WEAK_KEY"}):
        with pytest.raises(KeyMaterialError) as info:
            load_key(**source)
        message = str(info.value)
        assert "fam key new --out FILE" in message and str(next(iter(source.values()))) in message
        assert material.hex() not in message.lower() and repr(material) not in message
    with pytest.raises(KeyMaterialError, match="fam key new"):
        Key(material, "secret")  # whatever the source (a Prefect Secret block too)


def test_random_key_material_and_research_keys_pass():
    assert Key(_material("random"), "secret").kind == "secret"
    assert Key(_material("random")[:16], "secret").kind == "secret"  # the 128-bit minimum
    # research keys are insecure by design and plain-text seeds: no entropy check applies
    assert research_key(0).kind == "research" and research_key(0).describe()["research_seed"] == 0


def test_research_keys_are_marked_and_reproducible():
    a, b = research_key(1), research_key(1)
    assert a == b and a.kind == "research" and a.describe()["research_seed"] == 1
    assert research_key(2).fingerprint != a.fingerprint
    with pytest.raises(KeyMaterialError):
        research_key(-1)


def test_key_noise_is_standard_normal_and_bound_to_generator():
    k = Key(_material("a"), "secret")
    z = key_noise(k, "gen-a", 4096)
    assert z.shape == (1, 4096)
    assert abs(z.mean().item()) < 0.06 and abs(z.std().item() - 1) < 0.06
    assert torch.equal(z, key_noise(k, "gen-a", 4096))
    assert not torch.allclose(z, key_noise(k, "gen-b", 4096))
    assert not torch.allclose(z, key_noise(Key(_material("b"), "secret"), "gen-a", 4096))


def test_key_latent_truncated_towards_w_avg(tiny_params):
    from tests.helpers.tiny_models import TinyGenerator

    g = TinyGenerator()
    k = research_key(3)
    w1 = key_latent(k, g, 1.0)
    w07 = key_latent(k, g, 0.7)
    assert w1.shape == (1, g.num_ws, g.w_dim)
    assert torch.allclose(w07, g.w_avg + 0.7 * (w1 - g.w_avg), atol=1e-6)
    assert torch.equal(w07, key_latent(k, g, 0.7))
    assert torch.equal(w1[:, 0], w1[:, -1])  # one W vector broadcast to every layer
