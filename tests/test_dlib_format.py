"""The .dat parser on the real file (counts, shapes) and on damaged copies (clear errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fam.errors import MissingWeightsError
from fam.faces.dlib_format import DlibFormatError, load_dlib_resnet, parse_dlib_resnet
from fam.weights import resolve

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return Path(resolve("dlib-face-recognition-resnet-v1")).read_bytes()


def test_real_file_counts_and_shapes(dat_bytes: bytes) -> None:
    params = parse_dlib_resnet(dat_bytes)
    assert len(params.convs) == 29 and len(params.affines) == 29
    assert params.fc_weight.shape == (256, 128) and params.fc_weight.dtype == np.float32
    assert params.input_size == 150
    np.testing.assert_allclose(params.channel_means, (122.782, 117.001, 104.298), atol=1e-4)
    assert params.distance_threshold == pytest.approx(0.6)
    stem = params.convs[0]
    assert stem.weight.shape == (32, 3, 7, 7) and (stem.stride, stem.padding) == (2, 0)
    # dlib pads k//2 at stride 1 and 0 at stride 2
    assert {(c.stride, c.padding) for c in params.convs[1:]} == {(1, 1), (2, 0)}
    assert [c.weight.shape[0] for c in params.convs[1:] if c.stride == 2] == [64, 128, 256, 256]
    assert [(p.kind, p.window, p.stride) for p in params.pools] == [
        ("max", 3, 2),
        *[("avg", 2, 2)] * 4,
        ("avg", 0, 1),
    ]
    assert all(np.isfinite(c.weight).all() for c in params.convs)
    assert all(a.gamma.shape == c.bias.shape for a, c in zip(params.affines, params.convs, strict=True))


@pytest.mark.parametrize("keep", [10, 500, 22_000_000])
def test_truncated_file_is_a_clear_error(dat_bytes: bytes, keep: int) -> None:
    with pytest.raises(DlibFormatError, match="truncated or corrupt"):
        parse_dlib_resnet(dat_bytes[:keep], source="cut.dat")


def test_trailing_and_altered_bytes_are_errors(dat_bytes: bytes, tmp_path: Path) -> None:
    with pytest.raises(DlibFormatError, match="unexpected bytes after the last layer"):
        parse_dlib_resnet(dat_bytes + b"\x00")
    bad = bytearray(dat_bytes)
    at = bad.index(b"con_4")
    bad[at : at + 5] = b"cxn_4"  # the first conv's layer tag
    file = tmp_path / "bad.dat"
    file.write_bytes(bytes(bad))
    with pytest.raises(MissingWeightsError, match=r"bad\.dat.*'cxn_4', expected 'con_4'"):
        load_dlib_resnet(file)
