"""e4e: official encoder layout, checkpoint round trip (decoder, encoder, latent_avg), inverter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fam.config import ModelSpec
from fam.errors import ConfigError, InputError, MissingWeightsError
from fam.interfaces import Inverter
from fam.io_utils import sha256_file
from fam.models.e4e import E4EInverter, Encoder4Editing, load_e4e_checkpoint
from fam.models.factory import BuildContext, build
from fam.models.stylegan2 import StyleGAN2Generator, generator_state_from_checkpoint
from tests.helpers.official_layouts import e4e_checkpoint, e4e_encoder, materialise, rosinality_generator

pytestmark = pytest.mark.unit

SMALL = {4: 32, 8: 32, 16: 32, 32: 16}  # decoder widths of the small round-trip checkpoint
W = 32  # W width of the small checkpoint (the official one: 512)


def test_official_1024_encoder_layout_loads_strictly():
    layout = e4e_encoder(1024, 512)
    with torch.device("meta"):  # full size (about 1 GB of weights) checked without allocating it
        encoder = Encoder4Editing(num_ws=18, w_dim=512)
    encoder.load_state_dict(materialise(layout, device="meta"), strict=True, assign=True)
    assert set(encoder.state_dict()) == set(layout)
    assert len(encoder.styles) == 18 and encoder.taps == (6, 20, 23)


def test_official_1024_checkpoint_decoder_split():
    """decoder.* of an e4e checkpoint is exactly the rosinality generator layout."""
    dec = {f"decoder.{k}": v for k, v in materialise(rosinality_generator(1024), device="meta").items()}
    enc = {f"encoder.{k}": v for k, v in materialise(e4e_encoder(1024), device="meta").items()}
    sd, latent_avg = generator_state_from_checkpoint({"state_dict": dec | enc, "latent_avg": None}, "ckpt")
    with torch.device("meta"):
        from fam.models.stylegan2 import StyleGAN2Config

        gen = StyleGAN2Generator(StyleGAN2Config.make(1024, channel_multiplier=2))
    gen.load_state_dict(sd, strict=True, assign=True)
    assert latent_avg is None and gen.num_ws == 18


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str, dict]:
    ckpt = e4e_checkpoint(stylegan_size=32, style_dim=W, decoder_channels=SMALL, seed=0)
    path = tmp_path_factory.mktemp("e4e") / "e4e_small.pt"
    torch.save(ckpt, path)
    return path, sha256_file(path), ckpt


def test_checkpoint_round_trip(checkpoint):
    path, digest, ckpt = checkpoint
    gen, encoder, latent_avg = load_e4e_checkpoint(path, digest)
    assert (gen.num_ws, encoder.num_ws, encoder.w_dim) == (8, 8, W)
    assert latent_avg.shape == (8, W)
    assert torch.equal(latent_avg, ckpt["latent_avg"])
    assert torch.equal(gen.w_avg, ckpt["latent_avg"][0])  # rows are identical in e4e files
    assert torch.equal(gen.style[1].weight, ckpt["state_dict"]["decoder.style.1.weight"])
    assert torch.equal(encoder.latlayer1.weight, ckpt["state_dict"]["encoder.latlayer1.weight"])
    assert gen.generator_id == f"stylegan2-e4e:sha256:{digest}"


def test_inverter_from_builder(checkpoint):
    path, digest, _ = checkpoint
    gen, encoder, latent_avg = load_e4e_checkpoint(path, digest)
    ctx = BuildContext(torch.device("cpu"), generator=gen)
    inverter = build("inverter", ModelSpec("e4e", {"checkpoint": str(path), "sha256": digest}), ctx)
    assert isinstance(inverter, Inverter)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ws = inverter.invert(images)
        resized = torch.nn.functional.interpolate(images, size=(256, 256), mode="bilinear", antialias=True)
        deltas = encoder(resized)
    assert ws.shape == (2, 8, W)
    assert torch.allclose(ws, deltas + latent_avg, atol=1e-5)
    # e4e: every layer is w0 + its own delta; row 0 is w0 itself
    with torch.no_grad():
        c3_block = encoder.styles[0]
        assert torch.isfinite(ws).all() and c3_block.out_c == W
        encoder.progressive_stage = 0  # training stage 0: no deltas, all rows equal w0
        flat = encoder(resized)
        encoder.progressive_stage = encoder.num_ws
    assert torch.allclose(flat, flat[:, :1].expand_as(flat))
    assert torch.allclose(flat[:, 0], deltas[:, 0])
    assert not torch.allclose(deltas[:, 5], deltas[:, 0])


def test_latent_avg_of_one_row_is_broadcast(tmp_path: Path):
    ckpt = e4e_checkpoint(stylegan_size=32, style_dim=W, decoder_channels=SMALL, latent_avg_rows=0, seed=1)
    path = tmp_path / "e4e_flat.pt"
    torch.save(ckpt, path)
    gen, _, latent_avg = load_e4e_checkpoint(path, sha256_file(path))
    assert latent_avg.shape == (8, W)
    assert torch.equal(latent_avg[3], ckpt["latent_avg"]) and torch.equal(gen.w_avg, ckpt["latent_avg"])


def test_builder_errors(checkpoint, tmp_path: Path):
    path, digest, ckpt = checkpoint
    cpu = BuildContext(torch.device("cpu"))
    with pytest.raises(ConfigError, match="checkpoint is not set"):
        build("inverter", ModelSpec("e4e", {}), cpu)
    with pytest.raises(MissingWeightsError, match="no sha256 is pinned"):
        build("inverter", ModelSpec("e4e", {"checkpoint": str(path)}), cpu)
    with pytest.raises(MissingWeightsError, match="sha256"):
        build("inverter", ModelSpec("e4e", {"checkpoint": str(path), "sha256": "f" * 64}), cpu)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        build("inverter", ModelSpec("e4e", {"checkpoint": str(tmp_path / "x.pt"), "sha256": digest}), cpu)
    wrong_gen = BuildContext(torch.device("cpu"), generator=_FakeGenerator(num_ws=18, w_dim=512))
    with pytest.raises(ConfigError, match="8x32 W\\+ codes but the generator takes 18x512"):
        build("inverter", ModelSpec("e4e", {"checkpoint": str(path), "sha256": digest}), wrong_gen)
    no_avg = tmp_path / "no_avg.pt"
    torch.save({**ckpt, "latent_avg": None}, no_avg)
    with pytest.raises(InputError, match="no latent_avg"):
        load_e4e_checkpoint(no_avg, sha256_file(no_avg))


class _FakeGenerator:
    def __init__(self, num_ws: int, w_dim: int) -> None:
        self.num_ws, self.w_dim = num_ws, w_dim


def test_inverter_rejects_bad_images(checkpoint):
    path, digest, _ = checkpoint
    _, encoder, latent_avg = load_e4e_checkpoint(path, digest)
    inverter = E4EInverter(encoder, latent_avg, "test")
    with pytest.raises(ValueError, match=r"\[B, 3, R, R\]"):
        inverter.invert(torch.zeros(1, 1, 64, 64))
