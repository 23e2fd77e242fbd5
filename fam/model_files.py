"""Which files the configured models load and whether they are here (``fam models``).

One description per built-in model name (``models.<role>.name`` and ``evaluate.recognizers``):
the weight-catalog entries it loads (:mod:`fam.weights_catalog`) and the options that point it at
a file elsewhere. A model that a plugin registered is listed without its files. Nothing is built
or loaded here; with ``check`` each present file is hash-checked (reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fam import weights
from fam.config import ModelSpec, Params
from fam.io_utils import sha256_file


@dataclass(frozen=True)
class _Need:
    """One file a model loads: a catalog entry, and/or a path (+ pinned sha256) from its options."""

    entry: str | None = None
    path: str | None = None
    sha256: str | None = None
    option: str = "path"  # the option that names the file


@dataclass(frozen=True)
class FileState:
    label: str  # the catalog name, else the path
    state: str  # present | missing | corrupt | unchecked
    detail: str  # the file, or how to get it
    file: str = ""  # the file looked at ("" when there is none to look at)


@dataclass(frozen=True)
class ConfiguredModel:
    setting: str  # models.generator, evaluate.recognizers[0], ...
    name: str
    files: tuple[FileState, ...]
    note: str = ""  # why there is no file, when there is none


def _path_need(entry: str | None, o: Mapping[str, Any], option: str = "path") -> _Need:
    return _Need(entry, o.get(option), o.get("sha256"), option)


def _needs(role: str, spec: ModelSpec) -> list[_Need] | str:
    """The files of a built-in model, or a note saying why it has none."""
    o = spec.options
    match role, spec.name:
        case "generator", "stylegan2":
            if o.get("weights") == "random":
                return "random weights (untrained), no file"
            return [_Need(None, o.get("weights"), o.get("sha256"), "weights")]
        case "inverter", "projection":
            return "no file: projection optimises against the generator"
        case "inverter", "e4e":
            return [_path_need("e4e-ffhq-encode", o, "checkpoint")]
        case "inverter", "fam-encoder":
            return [_path_need(None, o, "checkpoint")]
        case (("identity" | "recognizer"), "dlib"):
            return [_path_need("dlib-face-recognition-resnet-v1", o)]
        case "attribute", "fam-attr":
            return [_Need("mtcnn-onet"), _Need("fam-attr-stats")]
        case "attribute", "farl":
            return [_path_need("farl-ep64", o, "checkpoint")]
        case "recognizer", ("arcface-irse50" | "arcface-ir152"):
            return [_path_need(spec.name, o)]
        case "recognizer", "facenet":
            return [_path_need("facenet-inception-resnet-v1", o)]
        case "recognizer", "faceres":
            return [_Need("faceres-graph"), _Need("faceres-weights")]
    return "registered by a plugin: its files are not described here"


def _state(need: _Need, setting: str, check: bool) -> FileState:
    entry = weights.get(need.entry) if need.entry else None
    if need.path is None:
        if entry is None or entry.source == "user":
            how = entry.how_to_get + "; then " if entry else ""
            return FileState(need.entry or need.option, "missing", f"{how}set {setting}.{need.option}")
        if not check:
            file = weights.locate(entry)
            state = "unchecked" if file is not None and file.is_file() else "missing"
            detail = str(file) if state == "unchecked" else entry.how_to_get
            return FileState(entry.name, state, detail, str(file or ""))
        state, detail = weights.status(entry)
        return FileState(entry.name, state, detail, str(weights.locate(entry) or ""))
    file = Path(need.path).expanduser()
    label = need.entry or str(file)
    if not file.is_file():
        return FileState(label, "missing", f"{file} does not exist ({setting}.{need.option})", str(file))
    expected = need.sha256 or (entry.sha256 if entry else None)
    if not check or expected is None:
        detail = str(file) if expected else f"{file} (no sha256 pinned)"
        return FileState(label, "unchecked", detail, str(file))
    if sha256_file(file) != expected.lower():
        return FileState(label, "corrupt", f"{file}: sha256 differs from the pinned one", str(file))
    return FileState(label, "present", str(file), str(file))


def configured_models(params: Params, *, check: bool = True) -> list[ConfiguredModel]:
    """The models ``params`` selects, each with the state of the files it loads."""
    specs = [
        (f"models.{role}", role, getattr(params.models, role)) for role in params.models.__dataclass_fields__
    ]
    specs += [
        (f"evaluate.recognizers[{i}]", "recognizer", spec)
        for i, spec in enumerate(params.evaluate.recognizers)
    ]
    out = []
    for setting, role, spec in specs:
        needs = _needs(role, spec)
        if isinstance(needs, str):
            out.append(ConfiguredModel(setting, spec.name, (), needs))
        else:
            out.append(ConfiguredModel(setting, spec.name, tuple(_state(n, setting, check) for n in needs)))
    return out
