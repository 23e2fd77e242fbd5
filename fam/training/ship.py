"""Ship a trained prior inside the package: the EMA generator as the project's own model file.

``fam ship-prior`` takes an exported lifeboat (``prior.pt``: the float16 EMA generator in the
rosinality ``{'g_ema', 'latent_avg'}`` layout, and ``meta.pt``), checks that it loads as a
generator of the recorded architecture, copies it to ``fam/assets/models/<name>.pt`` and writes
a model card ``<name>.json`` beside it: the catalog fields (sha256, size, role, license, how to
rebuild it) and its provenance (images seen, architecture, training settings, data pack and
people split, the quality gates as measured, and where it holds identity: the W+ layer split
``benchmarks/scan_identity_layers.py`` measured, which ``layers: auto`` then means for it).
:mod:`fam.weights_catalog` turns every card into a registry entry, so
``models.generator.weights: <name>`` loads it hash-checked and ``fam models`` lists it. A name
already shipped with other bytes or another split is refused unless ``replace`` is given.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fam.errors import ConfigError, InputError, OutputExistsError
from fam.io_utils import atomic_write_text, sha256_file
from fam.layers import LayerGroups
from fam.weights_catalog import SHIPPED_MODELS

ASSETS = Path(__file__).resolve().parent.parent / SHIPPED_MODELS
LICENSE = (
    "MIT (project code); weights trained on the train split of LFW (Labeled Faces in the Wild, "
    "University of Massachusetts): research use; the faces' subjects gave no consent to generation"
)


def parse_gate_line(line: str) -> dict[str, float]:
    """``benchmarks/bench_prior.py``'s last line (``fid=40.3 face_rate=1.000 ...``) -> {name: value}."""
    out: dict[str, float] = {}
    for part in line.split():
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"gate values: {part!r} is not name=value (give bench_prior's last line)")
        try:
            out[key] = float(value)
        except ValueError as exc:
            raise InputError(f"gate values: {part!r} has no number") from exc
    return out


def parse_layers_line(line: str) -> tuple[list[int], dict[str, float]]:
    """``benchmarks/scan_identity_layers.py``'s last line -> (identity layers, the scan's values)."""
    values = dict(part.partition("=")[::2] for part in line.split())
    text = values.pop("identity_layers", "")
    if not text or text == "none":
        raise InputError(
            "the identity-layer scan chose no layers (its last line has no identity_layers=a,b,...): give "
            "the saved output of `python -m benchmarks.scan_identity_layers --prior EXPORT`"
        )
    try:
        layers = [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise InputError(f"identity_layers={text!r} is not a list of layer numbers") from exc
    return layers, parse_gate_line(" ".join(f"{k}={v}" for k, v in values.items()))


def ship_prior(
    export_dir: Path,
    name: str,
    gates: Mapping[str, float],  # measured by benchmarks/bench_prior.py on this export
    identity_layers: Sequence[int],  # measured by benchmarks/scan_identity_layers.py on this export
    *,
    layer_scan: Mapping[str, float] | None = None,  # the scan's values for those layers
    data: Mapping[str, Any] | None = None,  # the pack's meta (fam.training.pack): images, people, split
    assets: Path = ASSETS,
    replace: bool = False,
) -> Path:
    """Copy ``export_dir/prior.pt`` into ``assets`` as ``<name>.pt`` with its card; returns the card."""
    from fam.models.stylegan2 import config_from_state_dict, generator_state_from_checkpoint
    from fam.training.checkpoint import load

    export_dir = Path(export_dir)
    source, meta_file = export_dir / "prior.pt", export_dir / "meta.pt"
    for f in (source, meta_file):
        if not f.is_file():
            raise InputError(f"{f} does not exist: give the export folder of `fam train-prior --export`")
    if not name or any(c in name for c in "/\\ .") or name.startswith("-"):
        raise InputError(f"model name {name!r}: use letters, digits and dashes (it names the file)")
    meta = load(meta_file)
    state, latent_avg = generator_state_from_checkpoint(load(source), str(source))
    config = config_from_state_dict(state, str(source))
    trained = meta.get("config", {})
    expected = {int(k): int(v) for k, v in trained.get("channels", {}).items()}
    if latent_avg is None or (expected and dict(config.channels) != expected):
        raise InputError(
            f"{source} does not hold the generator {meta_file} describes (channels {dict(config.channels)} "
            f"vs {expected}, latent_avg {'present' if latent_avg is not None else 'missing'})"
        )
    try:
        groups = LayerGroups.around(identity_layers, config.num_ws)
    except ConfigError as exc:
        raise InputError(f"identity layers for {source}: {exc}") from exc
    layers = {
        "coarse": list(groups.coarse),
        "identity": list(groups.identity),
        "fine": list(groups.fine),
        "scan": dict(layer_scan or {}),
    }
    target, card_file = assets / f"{name}.pt", assets / f"{name}.json"
    digest = sha256_file(source)
    if target.exists() and not replace:
        if sha256_file(target) != digest:
            raise OutputExistsError(f"{target} already ships other weights; pass --replace to supersede them")
        shipped_split = json.loads(card_file.read_text()).get("layers", {}) if card_file.is_file() else {}
        if shipped_split.get("identity") != layers["identity"]:
            raise OutputExistsError(
                f"{target} ships with identity layers {shipped_split.get('identity')}, not "
                f"{layers['identity']}; the split changes every protected image: pass --replace"
            )
    images_seen = int(meta.get("nimg", 0))
    kimg = images_seen / 1000
    card = {
        "name": name,
        "role": (
            f"the project's face StyleGAN2 prior, {config.resolution} px, EMA generator after "
            f"{kimg:.1f} kimg (float16)"
        ),
        "file": target.name,
        "license": LICENSE,
        "sha256": digest,
        "size_bytes": source.stat().st_size,
        "how_to_get": (
            "it ships with the project; rebuild with `fam train-prior` (docs/training.md) then "
            f"`fam ship-prior --name {name}`"
        ),
        "images_seen": images_seen,
        "architecture": {
            "resolution": config.resolution,
            "channels": {str(k): v for k, v in config.channels},
            "w_dim": config.style_dim,
            "n_mlp": config.n_mlp,
        },
        "training": {k: v for k, v in trained.items() if k != "channels"},
        "data": dict(data) if data is not None else None,
        "gates": {k: None if math.isnan(v) else v for k, v in gates.items()},  # None: not measured
        "layers": layers,  # where it holds identity: `layers: auto` means this split for it
        "shipped": dt.date.today().isoformat(),
    }
    assets.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".pt.partial")
    shutil.copyfile(source, partial)
    if sha256_file(partial) != digest:
        partial.unlink()
        raise InputError(f"{source} changed while it was copied; stop the training run and ship again")
    partial.replace(target)
    atomic_write_text(card_file, json.dumps(card, indent=1, sort_keys=True) + "\n")
    return card_file
