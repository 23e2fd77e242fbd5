"""A reader of TensorFlow.js graph models (``model.json`` + weight shards) into a torch module.

A TF.js graph model is a frozen TensorFlow graph. ``modelTopology.node`` lists its operations by
name, each with its op type, the names of the nodes it reads and its attributes;
``weightsManifest`` lists the constants (name, shape, dtype, optional quantisation) in the order
their bytes follow one another in the group's shard files. :func:`read_graph_model` decodes both,
and :class:`GraphModule` runs the nodes that the requested outputs need, in dependency order: a
small interpreter, no TensorFlow required.

Layouts: TensorFlow computes NHWC; the module takes and keeps every 4-D tensor NCHW, torch's
layout, and converts what meets one: convolution filters once at build time (HWIO -> OIHW,
depthwise HWCM -> (C*M)1HW), 4-D constants (NHWC -> NCHW), lower-rank operands of elementwise ops
(broadcast as TensorFlow would against NHWC), and the axes of reductions and softmax. Tensors of
any other rank keep TensorFlow's layout. ``SAME`` padding is padded explicitly
(:mod:`fam.models.tf_padding`) because TensorFlow puts the odd pixel after the image.

Supported: the ops of MobileNet-style classifiers exported by the TF.js converter (see ``_OPS``),
weights stored as float32 / int32 or float16-quantised. Anything else raises ValueError naming the
op (or dtype) and the node.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fam.models.tf_padding import same_pad

Op = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str  # TensorFlow op type: "Conv2D", "Relu", ...
    inputs: tuple[str, ...]  # names of the nodes it reads, in argument order (control inputs dropped)
    attr: Mapping[str, Any]  # the node's attributes as the JSON holds them


@dataclass(frozen=True)
class GraphModel:
    nodes: Mapping[str, GraphNode]  # by name, in file order
    weights: Mapping[str, np.ndarray]  # constant name -> value in TensorFlow's layout (float32 / int32)
    source: str  # the model.json it was read from, for messages
    shards: tuple[Path, ...]  # the weight files read, in manifest order


# --------------------------------------------------------------------------------------------
# Reading model.json and its shards.

_STORED = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
_QUANTISED = {"float16": np.dtype("<f2")}


def read_graph_model(model_json: str | Path) -> GraphModel:
    """Parse a TF.js graph model; its shard files are read from the folder of ``model_json``."""
    path = Path(model_json)
    try:
        spec = json.loads(path.read_text())
        topology, manifest = spec["modelTopology"], spec["weightsManifest"]
        raw_nodes = topology["node"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a TF.js graph model ({exc!r})") from exc
    if spec.get("format", "graph-model") != "graph-model":
        raise ValueError(f"{path}: format {spec['format']!r}; only TF.js graph models can be read")
    nodes: dict[str, GraphNode] = {}
    for raw in raw_nodes:
        inputs = tuple(_input_name(str(i), raw["name"], path) for i in raw.get("input", []) if i[0] != "^")
        nodes[raw["name"]] = GraphNode(raw["name"], raw["op"], inputs, raw.get("attr", {}))
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        weights.update(_read_group(group, path))
    shards = tuple(path.parent / shard for group in manifest for shard in group["paths"])
    return GraphModel(nodes, weights, str(path), shards)


def _input_name(ref: str, node: str, path: Path) -> str:
    name, _, index = ref.partition(":")
    if index not in ("", "0"):
        raise ValueError(f"{path}: node {node!r} reads output {index} of {name!r}; only single outputs")
    return name


def _read_group(group: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Decode one weight group: its shards are one byte stream, the weights follow in order."""
    try:
        data = b"".join((path.parent / shard).read_bytes() for shard in group["paths"])
    except OSError as exc:
        raise ValueError(f"{path}: cannot read its weight shards {group['paths']} ({exc})") from exc
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in group["weights"]:
        name, shape = spec["name"], tuple(int(d) for d in spec["shape"])
        quant = spec.get("quantization")
        if quant is not None:
            if quant.get("dtype") not in _QUANTISED or set(quant) - {"dtype", "original_dtype"}:
                raise ValueError(f"{path}: weight {name!r} has quantisation {quant}; only float16 is read")
            stored = _QUANTISED[quant["dtype"]]
        elif spec["dtype"] in _STORED:
            stored = _STORED[spec["dtype"]]
        else:
            raise ValueError(f"{path}: weight {name!r} has dtype {spec['dtype']!r}; only float32 / int32")
        count = int(np.prod(shape, dtype=np.int64))
        end = offset + count * stored.itemsize
        if end > len(data):
            raise ValueError(f"{path}: shards {group['paths']} end inside weight {name!r} (truncated file?)")
        value = np.frombuffer(data, dtype=stored, count=count, offset=offset).reshape(shape)
        out[name] = value.astype(np.int32 if stored.kind == "i" else np.float32)
        offset = end
    if offset != len(data):
        raise ValueError(
            f"{path}: shards {group['paths']} hold {len(data) - offset} bytes the manifest lacks"
        )
    return out


# --------------------------------------------------------------------------------------------
# Node attributes.


def _attr_str(node: GraphNode, key: str, default: str | None = None) -> str:
    if key not in node.attr:
        if default is None:
            raise ValueError(f"node {node.name!r} ({node.op}) lacks attribute {key!r}")
        return default
    return base64.b64decode(node.attr[key]["s"]).decode()


def _attr_ints(node: GraphNode, key: str, default: Sequence[int]) -> list[int]:
    if key not in node.attr:
        return list(default)
    return [int(i) for i in node.attr[key]["list"].get("i", [])] or list(default)


def _attr_bool(node: GraphNode, key: str) -> bool:
    return bool(node.attr.get(key, {}).get("b", False))


def _attr_strs(node: GraphNode, key: str) -> list[str]:
    return [base64.b64decode(s).decode() for s in node.attr.get(key, {}).get("list", {}).get("s", [])]


def _spatial(node: GraphNode, key: str) -> tuple[int, int]:
    """The H and W entries of an NHWC attribute list (strides, dilations)."""
    values = _attr_ints(node, key, [1, 1, 1, 1])
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise ValueError(f"node {node.name!r} ({node.op}): {key} {values} not of the form [1, h, w, 1]")
    return values[1], values[2]


# --------------------------------------------------------------------------------------------
# The ops. 4-D tensors are NCHW; everything else keeps TensorFlow's layout.


def _nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


def _meet(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Operands of an elementwise op: a lower-rank one broadcast against a 4-D one as against NHWC."""
    if a.ndim == 4 and 0 < b.ndim < 4:
        b = _nhwc_to_nchw(b.reshape((1,) * (4 - b.ndim) + tuple(b.shape)))
    elif b.ndim == 4 and 0 < a.ndim < 4:
        a = _nhwc_to_nchw(a.reshape((1,) * (4 - a.ndim) + tuple(a.shape)))
    return a, b


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Op:
    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return fn(*_meet(a, b))

    return run


def _conv(node: GraphNode, depthwise: bool) -> Op:
    if _attr_str(node, "data_format", "NHWC") != "NHWC":
        raise ValueError(f"node {node.name!r} ({node.op}): only NHWC graphs are read")
    padding = _attr_str(node, "padding")
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"node {node.name!r} ({node.op}): padding {padding!r}; only SAME and VALID")
    stride, dilation = _spatial(node, "strides"), _spatial(node, "dilations")

    def run(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if padding == "SAME":
            x = same_pad(x, (weight.shape[2], weight.shape[3]), stride, dilation)
        groups = x.shape[1] if depthwise else 1
        return F.conv2d(x, weight, None, stride, 0, dilation, groups)

    return run


def _mean(node: GraphNode, axes: Sequence[int]) -> Op:
    keep = _attr_bool(node, "keep_dims")

    def run(x: torch.Tensor) -> torch.Tensor:
        tf_axes = [a % x.ndim for a in axes]
        if x.ndim != 4:
            return x.mean(dim=tf_axes, keepdim=keep)
        if keep:  # the result stays 4-D, so NCHW: move the axes
            return x.mean(dim=[(0, 2, 3, 1)[a] for a in tf_axes], keepdim=True)
        # a lower-rank result is in TensorFlow's layout: reduce the NHWC view
        return x.permute(0, 2, 3, 1).mean(dim=tf_axes)

    return run


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": F.relu,
    "Relu6": lambda x: x.clamp(0.0, 6.0),
    "Sigmoid": torch.sigmoid,
}


def _matmul(node: GraphNode) -> Op:
    transpose_a, transpose_b = _attr_bool(node, "transpose_a"), _attr_bool(node, "transpose_b")
    fused = _attr_strs(node, "fused_ops")
    if node.op == "MatMul" and fused:
        raise ValueError(f"node {node.name!r}: MatMul with fused ops {fused}")
    if fused and (fused[0] != "BiasAdd" or len(fused) > 2 or any(f not in _ACTIVATIONS for f in fused[1:])):
        raise ValueError(f"node {node.name!r} ({node.op}): fused ops {fused}; only BiasAdd [+ Relu/Relu6]")
    activation = _ACTIVATIONS[fused[1]] if len(fused) == 2 else None

    def run(a: torch.Tensor, b: torch.Tensor, *bias: torch.Tensor) -> torch.Tensor:
        out = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
        if bias:
            out = out + bias[0]
        return activation(out) if activation is not None else out

    return run


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return F.softmax(x, dim=1 if x.ndim == 4 else -1)  # TensorFlow's last axis


_ELEMENTWISE: dict[str, Op] = {
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "BiasAdd": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Maximum": _binary(torch.maximum),
    "Minimum": _binary(torch.minimum),
    "Identity": lambda x: x,
    "Softmax": _softmax,
    **_ACTIVATIONS,
}
_OPS = sorted({*_ELEMENTWISE, "Conv2D", "DepthwiseConv2dNative", "Mean", "MatMul", "_FusedMatMul"})

# Elementwise ops that may overwrite their first operand when no later step reads it: without
# gradients, writing into that buffer instead of a fresh one saves an allocation and its page
# faults per op (a third of faceres' time at batch 64 was such passes); the values are the same.
_IN_PLACE: dict[str, Callable[..., torch.Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "BiasAdd": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
}


_IN_PLACE_UNARY: dict[str, Op] = {
    "Relu": torch.relu_,
    "Relu6": lambda x: x.clamp_(0.0, 6.0),
    "Sigmoid": torch.sigmoid_,
}


def _in_place(fn: Callable[..., torch.Tensor], fallback: Op) -> Op:
    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _meet(a, b)
        if b.dtype == a.dtype and torch.broadcast_shapes(a.shape, b.shape) == a.shape:
            return fn(a, b, out=a)
        return fallback(a, b)

    return run


# --------------------------------------------------------------------------------------------
# The module.


@dataclass(frozen=True)
class _Step:
    name: str
    run: Op
    inputs: tuple[str, ...]
    release: tuple[str, ...]  # values no later step reads: freed after this one
    run_in_place: Op | None = None  # used without gradients: overwrites inputs[0] (released here)


class GraphModule(nn.Module):
    """Runs the part of a TF.js graph that ``outputs`` need: ``[B, C, H, W]`` -> ``{output: tensor}``.

    The graph's single placeholder is the input, given NCHW (the graph's own is NHWC). Constants
    become frozen parameters (float32) in torch's layouts, so ``.to(device)`` moves them.
    """

    def __init__(
        self,
        graph: GraphModel,
        outputs: Sequence[str],  # node names (a trailing ":0" is accepted) whose values forward returns
    ) -> None:
        super().__init__()
        self.outputs = tuple(_input_name(o, "outputs", Path(graph.source)) for o in outputs)
        order = _dependency_order(graph, self.outputs)
        placeholders = [n for n in order if graph.nodes[n].op == "Placeholder"]
        if len(placeholders) != 1:
            raise ValueError(
                f"{graph.source}: outputs {self.outputs} need {len(placeholders)} inputs; expected 1"
            )
        self.input_name = placeholders[0]
        dims = graph.nodes[self.input_name].attr.get("shape", {}).get("shape", {}).get("dim", [])
        # NHWC (-1, H, W, C) -> expected (C, H, W); -1 is free
        self.input_shape = tuple(int(dims[i]["size"]) for i in (3, 1, 2)) if len(dims) == 4 else None

        int_consts = {n for n, v in graph.weights.items() if v.dtype.kind == "i"}
        ops = [n for n in order if graph.nodes[n].op not in ("Const", "Placeholder")]
        compiled = [_compile(graph.nodes[name], graph, int_consts) for name in ops]
        read = {n for _, inputs in compiled for n in inputs}
        filters = _filter_layouts(graph, ops)
        names, tensors = [], []
        for name in order:  # the constants the steps read, in torch's layouts
            if graph.nodes[name].op != "Const" or name not in read:
                continue
            if name not in graph.weights:
                raise ValueError(f"{graph.source}: constant {name!r} is not in the weights manifest")
            value = torch.from_numpy(graph.weights[name].copy())
            if name in filters:
                value = filters[name](value)
            elif value.ndim == 4:
                value = _nhwc_to_nchw(value)
            names.append(name)
            tensors.append(value.contiguous())
        self._const_names = tuple(names)
        self.consts = nn.ParameterList(nn.Parameter(t, requires_grad=False) for t in tensors)
        last_use = {n: i for i, (_, inputs) in enumerate(compiled) for n in inputs}
        keep = {*self.outputs, *self._const_names}
        steps = []
        for i, (name, (run, inputs)) in enumerate(zip(ops, compiled, strict=True)):
            release = tuple(n for n in inputs if last_use[n] == i and n not in keep)
            op = graph.nodes[name].op
            # a value is overwritten only if a step made it (never the caller's input or a constant)
            # and not by Identity, whose result is another name for a value that may still be read
            owned = (
                bool(inputs)
                and inputs[0] in release
                and graph.nodes[inputs[0]].op not in ("Placeholder", "Const", "Identity")
            )
            in_place = None
            if owned and op in _IN_PLACE and len(inputs) == 2:
                in_place = _in_place(_IN_PLACE[op], run)
            elif owned and op in _IN_PLACE_UNARY and len(inputs) == 1:
                in_place = _IN_PLACE_UNARY[op]
            steps.append(_Step(name, run, inputs, release, in_place))
        self._steps = tuple(steps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x [B, C, H, W]`` -> the requested outputs by name (4-D ones NCHW)."""
        fixed = self.input_shape or (-1, -1, -1)
        if x.ndim != 4 or any(want not in (-1, got) for want, got in zip(fixed, x.shape[1:], strict=True)):
            shape = ", ".join("?" if d == -1 else str(d) for d in fixed)
            raise ValueError(
                f"graph input {self.input_name!r}: expected [B, {shape}] (NCHW), got {list(x.shape)}"
            )
        values: dict[str, torch.Tensor] = dict(zip(self._const_names, self.consts, strict=True))
        # channels-last is the graph's own NHWC order in memory; CPU convolutions, the depthwise ones
        # above all, run faster in it (faceres at batch 64: 2.6 -> 1.5 s; outputs agree to ~1e-6)
        values[self.input_name] = x.contiguous(memory_format=torch.channels_last)
        in_place = not torch.is_grad_enabled()
        for step in self._steps:
            run = step.run_in_place if in_place and step.run_in_place is not None else step.run
            values[step.name] = run(*(values[n] for n in step.inputs))
            for name in step.release:
                del values[name]
        return {name: values[name] for name in self.outputs}


def _dependency_order(graph: GraphModel, outputs: Sequence[str]) -> list[str]:
    """The nodes the outputs depend on, each after its inputs."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited, True: done
    for out in outputs:
        if out not in graph.nodes:
            raise ValueError(f"{graph.source}: no node named {out!r}")
        stack = [(out, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = True
                order.append(name)
                continue
            if state.get(name) is True:
                continue
            if name in state:
                raise ValueError(f"{graph.source}: the graph has a cycle through {name!r}")
            if name not in graph.nodes:
                raise ValueError(f"{graph.source}: a node reads {name!r}, which does not exist")
            state[name] = False
            stack.append((name, True))
            stack.extend((i, False) for i in reversed(graph.nodes[name].inputs) if state.get(i) is not True)
    return order


def _filter_layouts(
    graph: GraphModel, ops: Sequence[str]
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Constant name -> its conversion to torch's filter layout, for every convolution filter."""
    layouts: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name in ops:
        node = graph.nodes[name]
        if node.op == "Conv2D":
            convert = _conv_filter
        elif node.op == "DepthwiseConv2dNative":
            convert = _depthwise_filter
        else:
            continue
        source = node.inputs[1] if len(node.inputs) == 2 else ""
        if graph.nodes.get(source, node).op != "Const" or layouts.get(source, convert) is not convert:
            raise ValueError(f"{graph.source}: node {name!r} ({node.op}) needs its own constant filter")
        layouts[source] = convert
    return layouts


def _conv_filter(w: torch.Tensor) -> torch.Tensor:
    """``[H, W, I, O]`` -> ``[O, I, H, W]``."""
    return w.permute(3, 2, 0, 1)


def _depthwise_filter(w: torch.Tensor) -> torch.Tensor:
    """``[H, W, C, M]`` -> ``[C * M, 1, H, W]``: output channel ``c * M + m``, as TensorFlow orders it."""
    h, w_, c, m = w.shape
    return w.permute(2, 3, 0, 1).reshape(c * m, 1, h, w_)


def _compile(node: GraphNode, graph: GraphModel, int_consts: set[str]) -> tuple[Op, tuple[str, ...]]:
    """The function computing ``node`` and the names of the values it is called with."""
    if node.op in ("Conv2D", "DepthwiseConv2dNative"):
        return _conv(node, depthwise=node.op == "DepthwiseConv2dNative"), node.inputs
    if node.op == "Mean":
        axes_name = node.inputs[1]
        if axes_name not in int_consts:
            raise ValueError(f"{graph.source}: node {node.name!r} (Mean) needs constant integer axes")
        axes = [int(a) for a in np.atleast_1d(graph.weights[axes_name])]
        return _mean(node, axes), node.inputs[:1]
    if node.op in ("MatMul", "_FusedMatMul"):
        return _matmul(node), node.inputs
    if node.op in _ELEMENTWISE:
        return _ELEMENTWISE[node.op], node.inputs
    raise ValueError(f"{graph.source}: node {node.name!r} has op {node.op!r}; supported: {', '.join(_OPS)}")
