"""Build the four model roles from configuration.

One registry per role maps a name to ``"module:function"``; the module is imported only when
that name is used, so light commands never pay for heavy imports. Every builder has the
signature ``build(spec: ModelSpec, ctx: BuildContext) -> model`` and raises
:class:`~fam.errors.ConfigError` for options it does not know.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch

from fam.config import ModelsConfig, ModelSpec
from fam.errors import ConfigError
from fam.interfaces import AttributeEncoder, Generator, IdentityEncoder, Inverter

ROLES: dict[str, dict[str, str]] = {
    "generator": {
        "stylegan2": "fam.models.stylegan2:build_generator",
    },
    "inverter": {
        "projection": "fam.inversion:build_projection_inverter",
        "e4e": "fam.models.e4e:build_inverter",
        "fam-encoder": "fam.training.encoder_net:build_inverter",
    },
    "identity": {
        "dlib": "fam.faces.dlib_resnet:build_identity_encoder",
    },
    "attribute": {
        "fam-attr": "fam.faces.attributes:build_attribute_encoder",
        "farl": "fam.faces.farl:build_farl_encoder",
    },
}


def register(role: str, name: str, target: str) -> None:
    """Add a builder (``"package.module:function"``); tests register their tiny models here."""
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")
    ROLES[role][name] = target


def available(role: str) -> list[str]:
    return sorted(ROLES[role])


@dataclass(frozen=True)
class BuildContext:
    device: torch.device
    generator: Generator | None = None  # set when building an inverter


def build(role: str, spec: ModelSpec, ctx: BuildContext) -> Any:
    table = ROLES[role]
    if spec.name not in table:
        raise ConfigError(
            f"models.{role}.name = {spec.name!r} is not a known {role}; "
            f"valid names: {', '.join(sorted(table)) or '(none registered)'}"
        )
    module_name, func_name = table[spec.name].split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    model = builder(spec, ctx)
    if isinstance(model, torch.nn.Module):
        model.eval().requires_grad_(False)
    return model


@dataclass(frozen=True)
class ModelBundle:
    generator: Generator
    inverter: Inverter
    identity: IdentityEncoder
    attribute: AttributeEncoder


def build_models(cfg: ModelsConfig, device: torch.device) -> ModelBundle:
    generator = build("generator", cfg.generator, BuildContext(device))
    ctx = BuildContext(device, generator=generator)
    return ModelBundle(
        generator=generator,
        inverter=build("inverter", cfg.inverter, ctx),
        identity=build("identity", cfg.identity, ctx),
        attribute=build("attribute", cfg.attribute, ctx),
    )


def check_options(spec: ModelSpec, role: str, allowed: dict[str, Any]) -> dict[str, Any]:
    """Merge ``spec.options`` over ``allowed`` defaults, refusing unknown option names."""
    unknown = sorted(set(spec.options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"models.{role} ({spec.name}) has unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(allowed))}"
        )
    return {**allowed, **dict(spec.options)}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"runtime.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device = {name!r} but no CUDA device is visible; use auto or cpu")
    return device
