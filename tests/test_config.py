from __future__ import annotations

import pytest

from fam.config import load_params, parse_override, parse_params
from fam.errors import ConfigError
from fam.layers import auto_groups, resolve_groups

pytestmark = pytest.mark.unit


def test_repository_params_parse_with_paper_defaults():
    p = load_params("params.yaml")
    assert p.optimise.steps == 50 and p.optimise.lr == 0.01
    assert (p.optimise.weights.anonymity, p.optimise.weights.consistency, p.optimise.weights.attribute) == (
        10.0,
        10.0,
        0.15,
    )
    assert p.key.truncation_psi == 0.7 and p.mixing.mode == "paper"
    assert p.groups.single_image_views == 5


def test_unknown_keys_and_bad_values_name_the_setting():
    with pytest.raises(ConfigError, match=r"optimise\.stepz"):
        parse_params({"optimise": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"mixing\.mode"):
        parse_params({"mixing": {"mode": "blend"}})
    with pytest.raises(ConfigError, match="must be an integer"):
        parse_params({"optimise": {"steps": "ten"}})


def test_overrides_and_digest():
    p = parse_params({})
    q = p.replace({"optimise.steps": 7})
    assert q.optimise.steps == 7 and p.optimise.steps == 50
    assert p.digest() != q.digest() and p.digest() == parse_params({}).digest()
    assert p.method_digest() == p.replace({"runtime.threads": 1}).method_digest()
    assert p.method_digest() != q.method_digest()
    assert parse_override("optimise.weights.attribute=0") == ("optimise.weights.attribute", 0)


def test_layer_groups_paper_split_and_rule():
    g18 = auto_groups(18)
    assert (g18.coarse, g18.identity, g18.fine) == ((0, 1, 2), (3, 4, 5, 6, 7), tuple(range(8, 18)))
    g10 = auto_groups(10)  # 64 px
    assert (g10.coarse, g10.identity, g10.fine) == ((0, 1, 2), (3, 4, 5, 6, 7), (8, 9))
    g8 = auto_groups(8)  # 32 px keeps one fine layer
    assert (g8.identity, g8.fine) == ((3, 4, 5, 6), (7,))
    p = parse_params({"layers": {"coarse": [0, 1], "identity": [2, 3, 4], "fine": [5, 6, 7]}})
    assert resolve_groups(p.layers, 8).identity == (2, 3, 4)
    with pytest.raises(ConfigError, match="partition"):
        resolve_groups(parse_params({"layers": {"coarse": [0]}}).layers, 8)
