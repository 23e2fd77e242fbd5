"""Weight registry: a corrupted copy of a model file is refused with the fix in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from fam.errors import MissingWeightsError
from fam.weights import resolve, sha256_file


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


def test_user_entry_without_hash_says_what_to_pin(tmp_path: Path) -> None:
    file = tmp_path / "w.pt"
    file.write_bytes(b"weights")
    with pytest.raises(MissingWeightsError, match="no sha256 is pinned"):
        resolve("arcface-irse50", path=file)
    assert resolve("arcface-irse50", path=file, sha256=sha256_file(file)) == file
