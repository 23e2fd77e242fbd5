"""Build the four model roles from configuration.

One :class:`~fam.registry.Registry` per role maps a name to ``"module:function"``; the module is
imported only when that name is built, so light commands never pay for heavy imports. Every
builder has the signature ``build(spec: ModelSpec, ctx: BuildContext) -> model`` and raises
:class:`~fam.errors.ConfigError` for options it does not know. A new model is one builder and
one line in :data:`ROLES` (tests register their tiny models with :func:`register`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from fam.config import ModelsConfig, ModelSpec
from fam.errors import ConfigError
from fam.interfaces import AttributeEncoder, Generator, IdentityEncoder, Inverter
from fam.registry import Registry


@dataclass(frozen=True)
class BuildContext:
    device: torch.device
    generator: Generator | None = None  # set when building an inverter


Builder = Callable[[ModelSpec, BuildContext], Any]


def _role(role: str, targets: Mapping[str, str]) -> Registry[Builder]:
    registry: Registry[Builder] = Registry(
        f"{role} model", hint=f"set models.{role}.name to one of them (params.yaml or --set)"
    )
    for name, target in targets.items():
        registry.register(name, target)
    return registry


ROLES: dict[str, Registry[Builder]] = {
    "generator": _role("generator", {"stylegan2": "fam.models.stylegan2:build_generator"}),
    "inverter": _role(
        "inverter",
        {
            "projection": "fam.inversion:build_projection_inverter",
            "e4e": "fam.models.e4e:build_inverter",
            "fam-encoder": "fam.training.encoder_net:build_inverter",
        },
    ),
    "identity": _role("identity", {"dlib": "fam.faces.dlib_resnet:build_identity_encoder"}),
    "attribute": _role(
        "attribute",
        {
            "fam-attr": "fam.faces.attributes:build_attribute_encoder",
            "farl": "fam.faces.farl:build_farl_encoder",
        },
    ),
}


def _registry(role: str) -> Registry[Builder]:
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")
    return ROLES[role]


def register(role: str, name: str, target: str | Builder, *, replace: bool = False) -> None:
    """Add a builder (``"package.module:function"`` or the function); a taken name is refused."""
    _registry(role).register(name, target, replace=replace)


def available(role: str) -> list[str]:
    return _registry(role).names()


def build(role: str, spec: ModelSpec, ctx: BuildContext) -> Any:
    model = _registry(role).get(spec.name)(spec, ctx)
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
