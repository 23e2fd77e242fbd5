"""StyleGAN2 generator: official layout loads, shapes, determinism, gradients, builder rules."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from fam.config import ModelSpec
from fam.errors import ConfigError, InputError, MissingWeightsError
from fam.interfaces import Generator
from fam.io_utils import sha256_file
from fam.models.factory import BuildContext, build
from fam.models.stylegan2 import (
    StyleGAN2Config,
    generator_from_state_dict,
    load_rosinality_state_dict,
    random_generator,
    upfirdn2d,
)
from tests.helpers.official_layouts import materialise, rosinality_generator

pytestmark = pytest.mark.unit

CPU = BuildContext(torch.device("cpu"))
SMALL = {4: 32, 8: 32, 16: 32, 32: 16, 64: 16, 128: 8, 256: 8}


def small_generator(resolution: int = 32, seed: int = 0, noise_seed: int | None = None):
    return random_generator(StyleGAN2Config.make(resolution, SMALL, style_dim=32, n_mlp=2), seed, noise_seed)


def test_official_config_f_1024_loads_strictly_and_synthesises():
    layout = rosinality_generator(1024, 512, 8)  # written from rosinality's model.py
    sd = materialise(layout, seed=1)
    latent_avg = torch.randn(512)
    gen = generator_from_state_dict(sd, latent_avg)
    assert set(gen.state_dict()) == set(layout)
    assert (gen.resolution, gen.num_ws, gen.w_dim, gen.z_dim) == (1024, 18, 512, 512)
    assert torch.equal(gen.w_avg, latent_avg)
    assert torch.equal(gen.noises.noise_16, sd["noises.noise_16"])  # official noise images are used
    with torch.no_grad():
        img = gen.synthesis(gen.w_avg.expand(1, 18, 512))
    assert img.shape == (1, 3, 1024, 1024)
    assert torch.isfinite(img).all()


@pytest.mark.parametrize(("resolution", "num_ws"), [(32, 8), (64, 10), (256, 14)])
def test_num_ws_and_shapes(resolution: int, num_ws: int):
    gen = small_generator(resolution)
    assert isinstance(gen, Generator)
    assert gen.num_ws == num_ws == 2 * resolution.bit_length() - 4
    w = gen.mapping(torch.randn(2, gen.z_dim))
    assert w.shape == (2, 32)
    img = gen.synthesis(w[:, None].expand(2, num_ws, 32))
    assert img.shape == (2, 3, resolution, resolution)
    with pytest.raises(ValueError, match="synthesis expects ws"):
        gen.synthesis(torch.zeros(2, num_ws + 1, 32))


def test_layer_indexing_follows_rosinality():
    """conv1 reads ws[:, 0], to_rgb1 ws[:, 1]; level k's convs ws[:, 2k+1], ws[:, 2k+2], ToRGB ws[:, 2k+3]."""
    gen = small_generator(32)
    seen: dict[str, float] = {}

    def record(name: str):
        def hook(module, args, output) -> None:
            seen[name] = args[1][0, 0].item()  # args = (x, style, ...); every entry of ws[:, i] is i

        return hook

    named = {"conv1": gen.conv1, "to_rgb1": gen.to_rgb1}
    for level, rgb in enumerate(gen.to_rgbs):
        named |= {f"conv{level}a": gen.convs[2 * level], f"conv{level}b": gen.convs[2 * level + 1]}
        named[f"rgb{level}"] = rgb
    hooks = [m.register_forward_hook(record(n)) for n, m in named.items()]
    gen.synthesis(torch.arange(gen.num_ws, dtype=torch.float32)[None, :, None].expand(1, gen.num_ws, 32))
    for h in hooks:
        h.remove()
    expected = {"conv1": 0, "to_rgb1": 1}
    for level in range(len(gen.to_rgbs)):
        expected |= {
            f"conv{level}a": 2 * level + 1,
            f"conv{level}b": 2 * level + 2,
            f"rgb{level}": 2 * level + 3,
        }
    assert seen == expected
    assert max(expected.values()) == gen.num_ws - 1


def test_synthesis_is_deterministic_and_seeded():
    gen = small_generator(64, seed=3)
    ws = torch.randn(2, gen.num_ws, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gen.synthesis(ws), gen.synthesis(ws))
    again = small_generator(64, seed=3)
    assert again.generator_id == gen.generator_id
    assert torch.equal(again.synthesis(ws), gen.synthesis(ws))
    other = small_generator(64, seed=4)
    assert other.generator_id != gen.generator_id
    assert not torch.equal(other.synthesis(ws), gen.synthesis(ws))
    renoised = small_generator(64, seed=3, noise_seed=9)
    assert not torch.equal(renoised.noises.noise_0, gen.noises.noise_0)
    assert renoised.generator_id.endswith("noise9")


def test_gradients_flow_to_ws():
    gen = small_generator(32).requires_grad_(False)
    ws = gen.w_avg.expand(2, gen.num_ws, 32).clone().requires_grad_(True)
    gen.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()
    assert (ws.grad.abs().sum(dim=(0, 2)) > 0).all()  # every W+ layer influences the image


def test_w_avg_is_the_mapping_mean():
    gen = small_generator(32)
    assert gen.w_avg.shape == (32,)
    z = torch.randn(4096, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(gen.w_avg, gen.mapping(z).mean(0), atol=1e-5)


def test_upsample_filter_keeps_constant_images_constant():
    x = torch.full((1, 2, 6, 6), 3.0)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = (k[None] * k[:, None]) / 64 * 4
    up = upfirdn2d(x, kernel, up=2, pad=(2, 1))
    assert up.shape == (1, 2, 12, 12)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))


def test_half_precision_state_dict_loads_as_float32():
    sd = materialise(rosinality_generator(32, 32, 2, SMALL), seed=0)
    full = generator_from_state_dict(sd, torch.zeros(32))
    half = generator_from_state_dict(
        {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, None
    )
    assert half.style[1].weight.dtype == torch.float32
    ws = full.w_avg.expand(1, full.num_ws, 32)
    assert torch.allclose(full.synthesis(ws), half.synthesis(ws), atol=5e-3)


def test_state_dict_with_wrong_keys_is_refused():
    gen = small_generator(32)
    sd = materialise(rosinality_generator(32, 32, 2, SMALL), seed=0)
    sd["style.9.weight"] = torch.zeros(32, 32)
    with pytest.raises(InputError, match=r"unexpected \['style.9.weight'\]"):
        load_rosinality_state_dict(gen, sd)
    del sd["style.9.weight"], sd["noises.noise_3"]
    with pytest.raises(InputError, match=r"noises\.noise_3"):
        load_rosinality_state_dict(gen, sd)


# ---- builder --------------------------------------------------------------------------------


def test_builder_requires_explicit_random():
    with pytest.raises(ConfigError, match="weights: random"):
        build("generator", ModelSpec("stylegan2", {"resolution": 32}), CPU)
    with pytest.raises(ConfigError, match="unknown option"):
        build("generator", ModelSpec("stylegan2", {"weights": "random", "size": 32}), CPU)
    with pytest.raises(ConfigError, match="not both"):
        build(
            "generator",
            ModelSpec("stylegan2", {"weights": "random", "channels": SMALL, "channel_multiplier": 1}),
            CPU,
        )
    with pytest.raises(ConfigError, match="power of two"):
        build("generator", ModelSpec("stylegan2", {"weights": "random", "resolution": 48}), CPU)


def test_builder_random_small():
    opts = {"weights": "random", "resolution": 32, "channels": SMALL, "w_dim": 32, "n_mlp": 2, "seed": 5}
    gen = build("generator", ModelSpec("stylegan2", opts), CPU)
    assert gen.generator_id.startswith("stylegan2-random:") and ":seed5:" in gen.generator_id
    assert not any(p.requires_grad for p in gen.parameters())


def _save_rosinality(tmp_path: Path, **extra) -> tuple[Path, dict]:
    sd = materialise(rosinality_generator(32, 32, 2, SMALL), seed=2)
    path = tmp_path / "g.pt"
    torch.save({"g_ema": sd, **extra}, path)
    return path, sd


def test_builder_loads_pinned_rosinality_file(tmp_path: Path):
    latent_avg = torch.randn(32)
    # a training checkpoint also carries its argparse options; weights_only loading must accept them
    path, sd = _save_rosinality(tmp_path, latent_avg=latent_avg, args=argparse.Namespace(size=32, n_mlp=2))
    digest = sha256_file(path)
    gen = build("generator", ModelSpec("stylegan2", {"weights": str(path), "sha256": digest}), CPU)
    assert gen.generator_id == f"stylegan2-32:sha256:{digest}"
    assert torch.equal(gen.w_avg, latent_avg)
    assert torch.equal(gen.style[1].weight, sd["style.1.weight"])
    with pytest.raises(ConfigError, match="resolution = 64"):
        build(
            "generator",
            ModelSpec("stylegan2", {"weights": str(path), "sha256": digest, "resolution": 64}),
            CPU,
        )


def test_builder_file_errors(tmp_path: Path):
    path, _ = _save_rosinality(tmp_path)
    with pytest.raises(MissingWeightsError, match="no sha256 is pinned"):
        build("generator", ModelSpec("stylegan2", {"weights": str(path)}), CPU)
    with pytest.raises(MissingWeightsError, match="expected 000000"):
        build("generator", ModelSpec("stylegan2", {"weights": str(path), "sha256": "0" * 64}), CPU)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        build(
            "generator",
            ModelSpec("stylegan2", {"weights": str(tmp_path / "nope.pt"), "sha256": "0" * 64}),
            CPU,
        )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        build("generator", ModelSpec("stylegan2", {"weights": str(junk), "sha256": sha256_file(junk)}), CPU)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(InputError, match="no generator inside"):
        build(
            "generator",
            ModelSpec("stylegan2", {"weights": str(foreign), "sha256": sha256_file(foreign)}),
            CPU,
        )
