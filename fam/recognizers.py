"""Face recognition evaluators: black-box FR models the evaluation scores protected faces with.

Each evaluator implements :class:`fam.interfaces.FaceRecognizer`: it takes FFHQ-aligned faces
(``[B, 3, R, R]``, RGB, ``[-1, 1]``), crops them with its own template
(:mod:`fam.faces.chip`), standardises them as its network was trained, embeds them in
batches of ``batch_size`` without gradients, and compares L2-normalised embeddings by cosine
similarity (``similarity(a, b) -> [Na, Nb]``, higher = more alike).

Registered names (``available()``):

- ``dlib``: dlib's ResNet (shipped, CC0). dlib decides "same person" by the L2 distance of
  *raw* descriptors (< 0.6). The raw norms cluster tightly (1.43 +- 0.07 on LFW), so the
  cosine of normalised descriptors orders pairs almost as that distance does; the operating
  threshold is re-estimated from impostor scores by the evaluation (see docs/face_models.md).
- ``arcface-irse50`` / ``arcface-ir152``: ArcFace backbones (``fam.models.irse``), user weights.
- ``facenet``: FaceNet InceptionResnetV1 (``fam.faces.facenet``), user weights.
- ``faceres``: HSE FaceRec MobileNet (``fam.faces.faceres``), fetched by scripts/fetch_faceres.sh;
  never used by a loss, so it scores as a true black box.

User weights are passed as ``path`` + ``sha256`` and checked by :mod:`fam.weights`.

A new evaluator is a builder ``RecognizerOptions -> FaceRecognizer`` registered here (its network
may live in its own module, imported inside the builder) and, if it loads a file, one entry in
:mod:`fam.weights_catalog`. ``evaluate.recognizers`` then accepts its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fam.errors import ConfigError, MissingWeightsError
from fam.faces.chip import ARCFACE_112, DLIB_150, FACENET_160, CropTemplate, crop_to_template
from fam.interfaces import FaceRecognizer
from fam.registry import Registry


@dataclass(frozen=True)
class RecognizerOptions:
    path: str | Path | None = None  # model file (required for user-supplied weights)
    sha256: str | None = None  # its pinned hash (required with ``path`` for user weights)
    batch_size: int = 64  # images per forward pass in ``embed``
    device: str | torch.device = "cpu"


class TemplateRecognizer:
    """An FR network behind a crop template and an input standardisation."""

    def __init__(
        self,
        name: str,
        network: nn.Module,  # cropped, standardised [B, 3, S, S] -> [B, embedding_dim]
        template: CropTemplate,  # where the network's input lies in the aligned image
        standardise: Callable[[torch.Tensor], torch.Tensor],  # [-1, 1] -> the network's input scale
        embedding_dim: int,
        batch_size: int,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size for recognizer {name!r} must be >= 1, got {batch_size}")
        self.name = name
        self.network = network.eval().requires_grad_(False)
        self.template = template
        self.standardise = standardise
        self.embedding_dim = embedding_dim
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` aligned, ``[-1, 1]`` -> unit vectors ``[B, embedding_dim]`` (on CPU)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images [B, 3, R, R], got {tuple(images.shape)}")
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device, torch.float32)
            crops = crop_to_template(batch, self.template)
            out.append(F.normalize(self.network(self.standardise(crops)).float(), dim=1).cpu())
        if not out:
            return torch.zeros(0, self.embedding_dim)
        return torch.cat(out)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of embeddings ``a [Na, D]`` and ``b [Nb, D]`` -> ``[Na, Nb]``."""
        from fam.evaluate.scoring import cosine_similarity

        return cosine_similarity(a, b)


# Any FaceRecognizer may be registered; the shipped ones are TemplateRecognizers.
Builder = Callable[[RecognizerOptions], FaceRecognizer]
RECOGNIZERS: Registry[Builder] = Registry(
    "face recognizer", hint="set evaluate.recognizers to names from this list (params.yaml or --set)"
)


def register(name: str, builder: Builder | str, *, replace: bool = False) -> None:
    """Add an evaluator: its builder, or ``"package.module:function"`` imported when first built."""
    RECOGNIZERS.register(name, builder, replace=replace)


def available() -> list[str]:
    return RECOGNIZERS.names()


def get(name: str, **options: Any) -> FaceRecognizer:
    """Build the evaluator ``name``; options: see :class:`RecognizerOptions`."""
    builder = RECOGNIZERS.get(name)
    unknown = sorted(set(options) - set(RecognizerOptions.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"face recognizer {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(RecognizerOptions.__dataclass_fields__)}"
        )
    return builder(RecognizerOptions(**options))


# --------------------------------------------------------------------------------------------
# The evaluators.


def _dlib(opts: RecognizerOptions) -> TemplateRecognizer:
    from fam.faces.dlib_resnet import DESCRIPTOR_DIM, load_dlib_resnet_module

    net = load_dlib_resnet_module(opts.path, opts.sha256).to(opts.device)
    return TemplateRecognizer(
        "dlib", net, DLIB_150, lambda x: (x + 1.0) * 127.5, DESCRIPTOR_DIM, opts.batch_size
    )


def _load_state_dict(weight_name: str, opts: RecognizerOptions) -> Mapping[str, torch.Tensor]:
    from fam.weights import resolve

    file = resolve(weight_name, path=opts.path, sha256=opts.sha256)
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise MissingWeightsError(f"{file}: expected a state dict, found {type(state).__name__}")
    return state


def _arcface(num_layers: int) -> Builder:
    def build(opts: RecognizerOptions) -> TemplateRecognizer:
        weight_name = f"arcface-{'irse50' if num_layers == 50 else 'ir152'}"
        state = dict(_load_state_dict(weight_name, opts))  # a missing file is reported first
        from fam.models.irse import load_backbone_state_dict  # lazy: only ArcFace users pay for it

        backbone = load_backbone_state_dict(state, source=str(opts.path))
        if backbone.num_layers != num_layers:
            raise MissingWeightsError(
                f"{opts.path} holds an IR-{backbone.num_layers} backbone, "
                f"but {weight_name} needs IR-{num_layers}"
            )
        # ArcFace input: RGB (x - 0.5) / 0.5, i.e. our [-1, 1] convention unchanged.
        return TemplateRecognizer(
            weight_name, backbone.to(opts.device), ARCFACE_112, lambda x: x, 512, opts.batch_size
        )

    return build


def _facenet(opts: RecognizerOptions) -> TemplateRecognizer:
    from fam.faces.facenet import EMBEDDING_DIM, load_facenet_state_dict

    net = load_facenet_state_dict(
        _load_state_dict("facenet-inception-resnet-v1", opts), source=str(opts.path)
    )
    # facenet-pytorch's fixed_image_standardization: (pixel - 127.5) / 128 with pixel = (x + 1) * 127.5
    return TemplateRecognizer(
        "facenet",
        net.to(opts.device),
        FACENET_160,
        lambda x: x * (127.5 / 128.0),
        EMBEDDING_DIM,
        opts.batch_size,
    )


register("dlib", _dlib)
register("arcface-irse50", _arcface(50))
register("arcface-ir152", _arcface(152))
register("facenet", _facenet)
register("faceres", "fam.faces.faceres:build_recognizer")
