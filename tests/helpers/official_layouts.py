"""Key names and shapes of the official checkpoints, written from the official code, not from fam.

Sources (read, not copied): rosinality/stylegan2-pytorch ``model.py`` (Generator, StyledConv,
ModulatedConv2d, ToRGB, Blur/Upsample buffers, ``noises`` buffers), omertov/encoder4editing
``models/encoders/psp_encoders.py`` + ``helpers.py`` + ``models/psp.py`` (checkpoint =
``{"state_dict": encoder.* + decoder.*, "latent_avg", "opts"}``) and TreB1eN InsightFace_Pytorch
``model.py`` (Backbone). These functions deliberately do not import anything from ``fam`` so that
a strict load of their output proves our modules match the official layouts.
"""

from __future__ import annotations

import torch

Layout = dict[str, tuple[int, ...]]

# rosinality make_kernel([1, 3, 3, 1]): outer product normalised to sum 1; Upsample and the
# upsampling conv's Blur multiply it by factor**2 = 4.
_K1 = torch.tensor([1.0, 3.0, 3.0, 1.0])
OFFICIAL_BLUR_KERNEL = (_K1[None, :] * _K1[:, None]) / 64.0 * 4.0


def rosinality_channels(channel_multiplier: int = 2) -> dict[int, int]:
    cm = channel_multiplier
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * cm,
        128: 128 * cm,
        256: 64 * cm,
        512: 32 * cm,
        1024: 16 * cm,
    }


def rosinality_generator(
    size: int = 1024,
    style_dim: int = 512,
    n_mlp: int = 8,
    channels: dict[int, int] | None = None,  # None: rosinality_channels(2), i.e. config-f
) -> Layout:
    ch = channels or rosinality_channels(2)
    out: Layout = {}
    for i in range(1, n_mlp + 1):  # style.0 is PixelNorm (no parameters)
        out[f"style.{i}.weight"] = (style_dim, style_dim)
        out[f"style.{i}.bias"] = (style_dim,)
    out["input.input"] = (1, ch[4], 4, 4)

    def styled_conv(prefix: str, cin: int, cout: int, upsample: bool) -> None:
        if upsample:
            out[f"{prefix}.conv.blur.kernel"] = (4, 4)
        out[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        out[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        out[f"{prefix}.conv.modulation.bias"] = (cin,)
        out[f"{prefix}.noise.weight"] = (1,)
        out[f"{prefix}.activate.bias"] = (cout,)

    def to_rgb(prefix: str, cin: int, upsample: bool) -> None:
        if upsample:
            out[f"{prefix}.upsample.kernel"] = (4, 4)
        out[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        out[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        out[f"{prefix}.conv.modulation.bias"] = (cin,)
        out[f"{prefix}.bias"] = (1, 3, 1, 1)

    styled_conv("conv1", ch[4], ch[4], False)
    to_rgb("to_rgb1", ch[4], False)
    log_size = size.bit_length() - 1
    for layer_idx in range((log_size - 2) * 2 + 1):
        res = 2 ** ((layer_idx + 5) // 2)
        out[f"noises.noise_{layer_idx}"] = (1, 1, res, res)
    in_ch = ch[4]
    for i in range(3, log_size + 1):
        out_ch = ch[2**i]
        styled_conv(f"convs.{2 * (i - 3)}", in_ch, out_ch, True)
        styled_conv(f"convs.{2 * (i - 3) + 1}", out_ch, out_ch, False)
        to_rgb(f"to_rgbs.{i - 3}", out_ch, True)
        in_ch = out_ch
    return out


def _batchnorm(out: Layout, prefix: str, c: int, affine: bool = True) -> None:
    if affine:
        out[f"{prefix}.weight"] = (c,)
        out[f"{prefix}.bias"] = (c,)
    out[f"{prefix}.running_mean"] = (c,)
    out[f"{prefix}.running_var"] = (c,)
    out[f"{prefix}.num_batches_tracked"] = ()


_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}


def _ir_input_and_body(num_layers: int, se: bool) -> Layout:
    out: Layout = {"input_layer.0.weight": (64, 3, 3, 3)}
    _batchnorm(out, "input_layer.1", 64)
    out["input_layer.2.weight"] = (64,)
    units = []
    for (cin, depth), n in zip(
        ((64, 64), (64, 128), (128, 256), (256, 512)), _UNITS[num_layers], strict=True
    ):
        units += [(cin, depth)] + [(depth, depth)] * (n - 1)
    for idx, (cin, depth) in enumerate(units):
        p = f"body.{idx}"
        if cin != depth:  # else MaxPool2d(1, stride): no parameters
            out[f"{p}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
            _batchnorm(out, f"{p}.shortcut_layer.1", depth)
        _batchnorm(out, f"{p}.res_layer.0", cin)
        out[f"{p}.res_layer.1.weight"] = (depth, cin, 3, 3)
        out[f"{p}.res_layer.2.weight"] = (depth,)
        out[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
        _batchnorm(out, f"{p}.res_layer.4", depth)
        if se:
            out[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            out[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
    return out


def arcface_backbone(num_layers: int = 50, mode: str = "ir_se", affine: bool = True) -> Layout:
    """TreB1eN Backbone (112x112); ``affine=False`` is the face.evoLVe/pSp IR_152 variant."""
    out = _ir_input_and_body(num_layers, mode == "ir_se")
    _batchnorm(out, "output_layer.0", 512)
    out["output_layer.3.weight"] = (512, 512 * 7 * 7)
    out["output_layer.3.bias"] = (512,)
    _batchnorm(out, "output_layer.4", 512, affine)
    return out


def e4e_encoder(stylegan_size: int = 1024, style_dim: int = 512) -> Layout:
    """Encoder4Editing(50, 'ir_se'); ``style_dim`` 512 in the official code (the W width)."""
    out = _ir_input_and_body(50, se=True)
    style_count = 2 * (stylegan_size.bit_length() - 1) - 2
    for i in range(style_count):
        spatial = 16 if i < 3 else 32 if i < 7 else 64
        for j in range(spatial.bit_length() - 1):  # log2(spatial) stride-2 convs, LeakyReLU between
            out[f"styles.{i}.convs.{2 * j}.weight"] = (style_dim, 512 if j == 0 else style_dim, 3, 3)
            out[f"styles.{i}.convs.{2 * j}.bias"] = (style_dim,)
        out[f"styles.{i}.linear.weight"] = (style_dim, style_dim)
        out[f"styles.{i}.linear.bias"] = (style_dim,)
    out["latlayer1.weight"] = (512, 256, 1, 1)
    out["latlayer1.bias"] = (512,)
    out["latlayer2.weight"] = (512, 128, 1, 1)
    out["latlayer2.bias"] = (512,)
    return out


def materialise(layout: Layout, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Tensors for a layout: plausible values (BN stats valid, FIR kernels official), seeded.

    ``device="meta"`` gives shape-only tensors for full-size checks that allocate nothing.
    """
    rng = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros((), dtype=torch.long, device=device)
            continue
        if device == "meta":
            sd[key] = torch.empty(shape, dtype=dtype, device="meta")
            continue
        if key.endswith("kernel"):
            t = OFFICIAL_BLUR_KERNEL.clone()
        elif key.endswith("running_var"):
            t = torch.ones(shape)
        elif key.endswith(("running_mean", ".bias")):
            t = torch.randn(shape, generator=rng) * 0.01
        else:
            t = torch.randn(shape, generator=rng) * 0.05
        sd[key] = t.to(dtype)
    return sd


def e4e_checkpoint(
    stylegan_size: int = 1024,
    style_dim: int = 512,
    decoder_channels: dict[int, int] | None = None,
    latent_avg_rows: int | None = None,  # None: [num_ws, style_dim] as e4e saves it; 0: [style_dim]
    seed: int = 0,
) -> dict:
    """An e4e checkpoint dict: ``state_dict`` (encoder.* + decoder.*), ``latent_avg``, ``opts``."""
    state = {f"encoder.{k}": v for k, v in materialise(e4e_encoder(stylegan_size, style_dim), seed).items()}
    dec = rosinality_generator(stylegan_size, style_dim, 8, decoder_channels)
    state.update({f"decoder.{k}": v for k, v in materialise(dec, seed + 1).items()})
    num_ws = 2 * (stylegan_size.bit_length() - 1) - 2
    rows = num_ws if latent_avg_rows is None else latent_avg_rows
    g = torch.Generator().manual_seed(seed + 2)
    latent_avg = torch.randn(style_dim, generator=g)
    if rows:
        latent_avg = latent_avg.expand(rows, style_dim).clone()
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": stylegan_size, "start_from_latent_avg": True}
    return {"state_dict": state, "latent_avg": latent_avg, "opts": opts}
