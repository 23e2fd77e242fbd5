"""TF.js graph reader: a tiny generated model.json + float16 shard against the same computation in torch,
TensorFlow's SAME padding for stride 2, and the errors for what it cannot read."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fam.models.tf_padding import same_padding
from fam.models.tfjs_graph import GraphModule, read_graph_model

pytestmark = pytest.mark.unit


def _b64(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _node(name: str, op: str, *inputs: str, **attr: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": list(inputs), "attr": attr}


def _window(stride: int) -> dict[str, Any]:
    return {
        "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
        "padding": _b64("SAME"),
        "data_format": _b64("NHWC"),
    }


def write_model(
    folder: Path,
    nodes: list[dict[str, Any]],
    weights: dict[str, np.ndarray],  # float32 values are stored float16-quantised unless named "*:f32"
    side: int,
    channels: int = 3,
) -> Path:
    """A TF.js graph model as the converter writes it: model.json + one shard, in manifest order."""
    placeholder = _node("input_1", "Placeholder")
    placeholder["attr"] = {
        "shape": {"shape": {"dim": [{"size": s} for s in ("-1", str(side), str(side), str(channels))]}}
    }
    manifest, blobs = [], []
    for key, value in weights.items():
        name, _, kind = key.partition(":")
        spec: dict[str, Any] = {"name": name, "shape": list(value.shape)}
        if value.dtype == np.int32:
            spec["dtype"], data = "int32", value.astype("<i4")
        elif kind == "f32":
            spec["dtype"], data = "float32", value.astype("<f4")
        else:
            spec["dtype"], data = "float32", value.astype("<f2")
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        manifest.append(spec)
        blobs.append(data.tobytes())
    consts = [_node(key.partition(":")[0], "Const") for key in weights]
    spec_json = {
        "format": "graph-model",
        "modelTopology": {"node": [placeholder, *consts, *nodes]},
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": manifest}],
    }
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(blobs))
    (folder / "model.json").write_text(json.dumps(spec_json))
    return folder / "model.json"


def f16(a: np.ndarray) -> torch.Tensor:
    """What the reader gets back from a float16-quantised weight."""
    return torch.from_numpy(a.astype(np.float16).astype(np.float32))


def test_tiny_mobilenet_matches_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = {
        "conv/kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),  # HWIO
        "bn/mul": rng.uniform(0.5, 1.5, size=4).astype(np.float32),
        "bn/sub": rng.normal(size=4).astype(np.float32),
        "relu/six": np.array(6.0, dtype=np.float32),
        "relu/zero": np.array(0.0, dtype=np.float32),
        "dw/kernel": rng.normal(size=(3, 3, 4, 2)).astype(np.float32),  # HWCM, channel multiplier 2
        "pool/axes": np.array([1, 2], dtype=np.int32),
        "fc/kernel": rng.normal(size=(8, 5)).astype(np.float32),
        "fc/bias:f32": rng.normal(size=5).astype(np.float32),  # stored plain float32
    }
    nodes = [
        _node("conv", "Conv2D", "input_1", "conv/kernel", **_window(2)),
        _node("bn/mul_1", "Mul", "conv", "bn/mul"),
        _node("bn/add_1", "Add", "bn/mul_1", "bn/sub"),
        _node("relu/Relu", "Relu", "bn/add_1"),
        _node("relu/min", "Minimum", "relu/Relu", "relu/six"),
        _node("relu/clip", "Maximum", "relu/min", "relu/zero"),
        _node("dw", "DepthwiseConv2dNative", "relu/clip", "dw/kernel", **_window(1)),
        _node("dw/relu6", "Relu6", "dw"),
        _node("pool/Mean", "Mean", "dw/relu6", "pool/axes", keep_dims={"b": False}),
        _node(
            "fc/Relu",
            "_FusedMatMul",
            "pool/Mean",
            "fc/kernel",
            "fc/bias",
            fused_ops={
                "list": {"s": [base64.b64encode(b"BiasAdd").decode(), base64.b64encode(b"Relu").decode()]}
            },
            num_args={"i": "1"},
        ),
        _node("prob/Softmax", "Softmax", "fc/Relu"),
    ]
    graph = read_graph_model(write_model(tmp_path, nodes, w, side=8))
    module = GraphModule(graph, ["pool/Mean", "prob/Softmax:0"])
    x = torch.rand(2, 3, 8, 8) * 255

    # the same network written directly in torch (NCHW), with TF's SAME padding spelled out:
    # 8 px, kernel 3, stride 2 -> 4 outputs, one padding pixel, placed after the image
    conv = F.conv2d(F.pad(x, [0, 1, 0, 1]), f16(w["conv/kernel"]).permute(3, 2, 0, 1), stride=2)
    h = conv * f16(w["bn/mul"])[:, None, None] + f16(w["bn/sub"])[:, None, None]
    h = h.clamp(0, 6)
    dw_kernel = f16(w["dw/kernel"])
    dw = torch.stack(
        [
            F.conv2d(h[:, c : c + 1], dw_kernel[:, :, c, m][None, None], padding=1)[:, 0]
            for c in range(4)
            for m in range(2)  # TF orders depthwise outputs channel-major: c * M + m
        ],
        dim=1,
    )
    pooled = dw.clamp(0, 6).mean(dim=(2, 3))
    logits = F.relu(pooled @ f16(w["fc/kernel"]) + torch.from_numpy(w["fc/bias:f32"]))
    out = module(x)
    assert set(out) == {"pool/Mean", "prob/Softmax"}
    torch.testing.assert_close(out["pool/Mean"], pooled, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out["prob/Softmax"], logits.softmax(dim=1), rtol=1e-5, atol=1e-6)

    # only what an output needs is built: the pooled features need no classifier weights
    pooled_only = GraphModule(graph, ["pool/Mean"])
    assert len(list(pooled_only.parameters())) == 6  # conv, bn mul + sub, the two relu bounds, dw
    assert all(not p.requires_grad for p in module.parameters())
    with pytest.raises(ValueError, match=r"expected \[B, 3, 8, 8\] \(NCHW\), got \[2, 8, 8, 3\]"):
        module(x.permute(0, 2, 3, 1))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "want"),
    [(8, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (224, 3, 2, (0, 1)), (7, 3, 1, (1, 1)), (6, 1, 2, (0, 0))],
)
def test_same_padding_amounts(size: int, kernel: int, stride: int, want: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == want


def test_stride_2_same_windows_start_at_the_first_pixel(tmp_path: Path) -> None:
    """Known answer: on a 4x4 input, TF's SAME 3x3 stride-2 windows cover rows/cols 0-2 and 2-4
    (row 4 is padding), so with a ones filter the outputs are sums of x[0:3, 0:3] ... x[2:4, 2:4]."""
    nodes = [_node("conv", "Conv2D", "input_1", "k", **_window(2))]
    path = write_model(tmp_path, nodes, {"k": np.ones((3, 3, 1, 1), dtype=np.float32)}, side=4, channels=1)
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    out = GraphModule(read_graph_model(path), ["conv"])(x)["conv"][0, 0]
    want = torch.tensor(
        [
            [x[0, 0, 0:3, 0:3].sum(), x[0, 0, 0:3, 2:4].sum()],
            [x[0, 0, 2:4, 0:3].sum(), x[0, 0, 2:4, 2:4].sum()],
        ]
    )
    torch.testing.assert_close(out, want)
    # a symmetric padding=1 (what torch's Conv2d would do) gives different numbers
    assert not torch.allclose(F.conv2d(x, torch.ones(1, 1, 3, 3), stride=2, padding=1)[0, 0], want)


def test_unreadable_graphs_name_the_problem(tmp_path: Path) -> None:
    k = {"k": np.ones((3, 3, 1, 1), dtype=np.float32)}
    path = write_model(tmp_path, [_node("pool", "MaxPool", "input_1")], k, side=4, channels=1)
    with pytest.raises(ValueError, match=r"node 'pool' has op 'MaxPool'; supported: .*Conv2D"):
        GraphModule(read_graph_model(path), ["pool"])
    with pytest.raises(ValueError, match="no node named 'missing'"):
        GraphModule(read_graph_model(path), ["missing"])

    (tmp_path / "group1-shard1of1.bin").unlink()
    with pytest.raises(ValueError, match=r"cannot read its weight shards \['group1-shard1of1\.bin'\]"):
        read_graph_model(path)
    (tmp_path / "group1-shard1of1.bin").write_bytes(b"\0" * 10)  # the kernel needs 18 bytes
    with pytest.raises(ValueError, match="end inside weight 'k'"):
        read_graph_model(path)

    spec = json.loads(path.read_text())
    spec["weightsManifest"][0]["weights"][0]["quantization"] = {"dtype": "uint8", "scale": 0.1, "min": 0}
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"quantisation .*uint8.*only float16"):
        read_graph_model(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"not a TF\.js graph model"):
        read_graph_model(path)


def test_in_place_steps_without_gradients_change_no_value(tmp_path: Path) -> None:
    """Without gradients, elementwise steps overwrite operands no later step reads; the results,
    the caller's input and the constants stay what the out-of-place run gives, and a value that
    Identity aliases while it is still read later is never overwritten."""
    rng = np.random.default_rng(1)
    w = {
        "conv/kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
        "bias": rng.normal(size=4).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, size=4).astype(np.float32),
        "axes": np.array([1, 2], dtype=np.int32),
    }
    nodes = [
        _node("a", "Conv2D", "input_1", "conv/kernel", **_window(1)),
        _node("alias", "Identity", "a"),
        _node("b", "Add", "alias", "bias"),  # alias dies here, but `a` is read again below
        _node("c", "Mul", "a", "scale"),
        _node("d", "Relu6", "c"),
        _node("e", "Sub", "b", "d"),
        _node("f", "Relu", "e"),
        _node("pooled", "Mean", "f", "axes", keep_dims={"b": False}),
    ]
    module = GraphModule(read_graph_model(write_model(tmp_path, nodes, w, side=8)), ["pooled", "b"])
    x = torch.rand(2, 3, 8, 8) * 255
    x_before, consts_before = x.clone(), [p.clone() for p in module.parameters()]
    with torch.enable_grad():
        reference = module(x)
    with torch.inference_mode():
        fast = module(x)
    assert all(torch.equal(fast[k], reference[k]) for k in reference)
    assert torch.equal(x, x_before)
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), consts_before, strict=True))
    in_place = [s.name for s in module._steps if s.run_in_place is not None]
    assert in_place == ["c", "d", "f"]  # b: its operand is an alias; e: its operand b is an output
