"""Safe decoding: true format from bytes, EXIF orientation, and a reason for every refusal."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fam.artifacts import Reject
from fam.errors import InputError
from fam.faces.imageio import (
    GRAYSCALE_REJECTED,
    NOT_AN_IMAGE,
    NOT_SQUARE,
    TOO_LARGE,
    UNREADABLE,
    UNSUPPORTED_FORMAT,
    DecodedImage,
    decode_image,
    extension_format,
    load_face,
    png_bytes,
    read_face,
    to_uint8,
)

pytestmark = pytest.mark.unit
BIG = 10**8


def _colour_image(w: int = 64, h: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _bytes(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_format_comes_from_bytes_not_name(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_bytes(_colour_image(), fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    out = decode_image(path, max_pixels=BIG)
    assert isinstance(out, DecodedImage)
    assert out.format == fmt
    assert extension_format(path) == "JPEG"
    assert (out.width, out.height) == (64, 48)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:5, :5] = (255, 0, 0)  # stored top-left corner is red
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, format="JPEG", exif=exif, quality=95)
    out = decode_image(path, max_pixels=BIG)
    assert isinstance(out, DecodedImage)
    assert out.pixels.shape == (40, 20, 3)  # displayed upright: portrait
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert out.pixels[1, -2, 0] > 200 and out.pixels[1, 1, 0] < 60


@pytest.mark.parametrize("lenient_pillow", [False, True])
def test_truncated_file_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lenient_pillow: bool
) -> None:
    # Even when some other library told Pillow to accept truncated files.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient_pillow)
    data = _bytes(_colour_image(256, 256), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    out = decode_image(path, max_pixels=BIG)
    assert isinstance(out, Reject) and out.reason == UNREADABLE
    assert out.format == "JPEG"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient_pillow  # the caller's setting is restored


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", b""])
def test_text_or_empty_file_is_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.jpg"
    path.write_bytes(content)
    out = decode_image(path, max_pixels=BIG)
    assert isinstance(out, Reject) and out.reason == NOT_AN_IMAGE


def test_gif_is_an_unsupported_format(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    path.write_bytes(_bytes(_colour_image(), "GIF"))
    out = decode_image(path, max_pixels=BIG)
    assert isinstance(out, Reject) and out.reason == UNSUPPORTED_FORMAT and out.format == "GIF"


def test_grayscale_policy_both_ways() -> None:
    gray = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1)), mode="L")
    data = _bytes(gray, "PNG")
    converted = decode_image(data, max_pixels=BIG, grayscale="convert")
    assert isinstance(converted, DecodedImage) and converted.was_grayscale
    assert converted.pixels.shape == (32, 64, 3)
    assert np.array_equal(converted.pixels[..., 0], converted.pixels[..., 2])
    rejected = decode_image(data, max_pixels=BIG, grayscale="reject")
    assert isinstance(rejected, Reject) and rejected.reason == GRAYSCALE_REJECTED
    # A grayscale photo stored as RGB JPEG counts as grayscale too; a colour photo does not.
    rgb_gray = _bytes(gray.convert("RGB"), "JPEG", quality=90)
    assert isinstance(decode_image(rgb_gray, max_pixels=BIG, grayscale="reject"), Reject)
    colour = decode_image(_bytes(_colour_image(), "PNG"), max_pixels=BIG, grayscale="reject")
    assert isinstance(colour, DecodedImage) and not colour.was_grayscale


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 65535], [32768, 16384]], dtype=np.uint16)
    out = decode_image(_bytes(Image.fromarray(arr), "PNG"), max_pixels=BIG)
    assert isinstance(out, DecodedImage)
    assert out.pixels[0, 1, 0] == 255 and out.pixels[1, 0, 0] == 128


def test_pixels_over_the_limit_are_refused_before_decoding() -> None:
    data = _bytes(Image.new("1", (2000, 2000)), "PNG")  # tiny file, 4 megapixels
    out = decode_image(data, max_pixels=1_000_000)
    assert isinstance(out, Reject) and out.reason == TOO_LARGE
    assert (out.width, out.height) == (2000, 2000)


def test_decompression_bomb_header_is_too_large() -> None:
    # A PNG whose header claims 100000 x 100000 RGB pixels (30 GB decoded) with almost no data.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
    out = decode_image(data, max_pixels=64_000_000)
    assert isinstance(out, Reject) and out.reason == TOO_LARGE


def test_transparent_png_is_composited_on_white() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    out = decode_image(_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), max_pixels=BIG)
    assert isinstance(out, DecodedImage)
    assert (out.pixels == 255).all()


def test_face_loader_resizes_with_lanczos_and_round_trips_through_png(tmp_path: Path) -> None:
    rgb = np.asarray(_colour_image(48, 48))
    (tmp_path / "f.png").write_bytes(png_bytes(rgb))
    x = load_face(tmp_path / "f.png")
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert (to_uint8(x) == rgb).all()  # exact for 8-bit pixels
    assert to_uint8(torch.stack([x, x])).shape == (2, 48, 48, 3)
    small = load_face(tmp_path / "f.png", 32)
    lanczos = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.Resampling.LANCZOS))
    assert (to_uint8(small) == lanczos).all()


def test_face_loader_says_why_not(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30)).save(tmp_path / "wide.png")
    (tmp_path / "notes.png").write_text("hello")
    wide = read_face(tmp_path / "wide.png")
    assert isinstance(wide, Reject) and wide.reason == NOT_SQUARE and wide.input == str(tmp_path / "wide.png")
    assert "40x30" in wide.detail
    notes = read_face(tmp_path / "notes.png")
    assert isinstance(notes, Reject) and notes.reason == NOT_AN_IMAGE
    with pytest.raises(InputError, match=r"wide\.png: not_square"):
        load_face(tmp_path / "wide.png")


def test_png_compression_level_changes_bytes_not_pixels() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[:32] = 128  # a flat half, so the zlib levels differ in size
    fast, default = png_bytes(rgb, 1), png_bytes(rgb)
    assert fast != default and png_bytes(rgb, 1) == fast  # deterministic per level
    for data in (fast, default):
        assert (np.asarray(Image.open(io.BytesIO(data))) == rgb).all()
