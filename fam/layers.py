"""Which W+ layers are coarse, identity and fine.

The paper (section 3.3) splits the 18 layers of the 1024-px StyleGAN2 as 0-2 coarse (pose, face
shape), 3-7 identity, 8-17 fine (hair, background, colour). In StyleGAN2 layer ``i`` drives the
convolution at resolution ``4 * 2**((i + 1) // 2)`` px: 0 -> 4 px, 1-2 -> 8 px, 3-4 -> 16 px,
5-6 -> 32 px, 7-8 -> 64 px and so on. So the paper's split is by absolute feature resolution:
coarse = the 4-8 px layers, identity = 16-32 px plus the first 64-px layer, fine = the rest.

The rule for other depths keeps those absolute resolutions: coarse = ``[0, 3)``,
identity = ``[3, min(8, num_ws - 1))``, fine = the rest, so every generator keeps at least one
fine layer (32 px: coarse 0-2, identity 3-6, fine 7; 64 px: 0-2 / 3-7 / 8-9). Explicit lists in
``params.yaml`` override the rule; they must partition ``range(num_ws)``.

Where a generator holds identity is a property of its training, not of the layout: in the 64-px
prior trained here the rule's layers 3-7 barely change a face's identity and layers 0-5 do
(measured by ``benchmarks/scan_identity_layers.py``, docs/training.md). So a prior shipped with
``fam ship-prior`` carries its measured split on its model card, and ``auto`` means that split
for it (:func:`resolve_groups_for`); for other generators, run the scan and write its lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fam.config import LayerGroupsConfig
from fam.errors import ConfigError
from fam.interfaces import Generator

GROUP_NAMES = ("coarse", "identity", "fine")


@dataclass(frozen=True)
class LayerGroups:
    num_ws: int
    coarse: tuple[int, ...]
    identity: tuple[int, ...]
    fine: tuple[int, ...]

    @classmethod
    def around(cls, identity: Sequence[int], num_ws: int) -> LayerGroups:
        """Contiguous ``identity`` layers, the layers before them coarse and those after them fine."""
        ids = tuple(sorted(identity))
        if not ids or ids != tuple(range(ids[0], ids[-1] + 1)) or ids[0] < 0 or ids[-1] >= num_ws:
            raise ConfigError(
                f"identity layers {list(identity)} must be a contiguous run within 0..{num_ws - 1}"
            )
        return cls(num_ws, tuple(range(ids[0])), ids, tuple(range(ids[-1] + 1, num_ws)))

    def indices(self, names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        out: list[int] = []
        for name in names:
            if name not in GROUP_NAMES:
                raise ConfigError(f"unknown layer group {name!r}; valid groups: {', '.join(GROUP_NAMES)}")
            out.extend(getattr(self, name))
        return tuple(sorted(out))


def auto_groups(num_ws: int) -> LayerGroups:
    if num_ws < 5:
        raise ConfigError(f"a generator with {num_ws} W+ layers is too shallow to split; need 32 px or more")
    ident_end = min(8, num_ws - 1)
    return LayerGroups(
        num_ws=num_ws,
        coarse=tuple(range(0, 3)),
        identity=tuple(range(3, ident_end)),
        fine=tuple(range(ident_end, num_ws)),
    )


def resolve_groups(cfg: LayerGroupsConfig, num_ws: int, measured: LayerGroups | None = None) -> LayerGroups:
    """The groups of ``cfg``; a group written ``auto`` comes from ``measured`` (a generator's own
    split, from its model card) when given, else from the resolution rule."""
    if measured is not None and measured.num_ws != num_ws:
        raise ConfigError(f"the generator's layer groups cover {measured.num_ws} W+ layers, not {num_ws}")
    auto = measured or auto_groups(num_ws)
    groups = {
        name: (getattr(auto, name) if getattr(cfg, name) == "auto" else tuple(getattr(cfg, name)))
        for name in GROUP_NAMES
    }
    flat = sorted(i for idx in groups.values() for i in idx)
    if flat != list(range(num_ws)):
        raise ConfigError(
            f"layers.coarse/identity/fine must partition 0..{num_ws - 1} for this generator "
            f"({num_ws} W+ layers); got {groups}"
        )
    if not groups["identity"]:
        raise ConfigError("layers.identity is empty: there would be nothing to mix")
    return LayerGroups(num_ws=num_ws, **groups)


def resolve_groups_for(cfg: LayerGroupsConfig, generator: Generator) -> LayerGroups:
    """:func:`resolve_groups` for ``generator``, whose ``layer_groups`` (when it has one: a shipped
    prior's measured split) stands in for the rule under ``auto``."""
    return resolve_groups(cfg, generator.num_ws, getattr(generator, "layer_groups", None))
