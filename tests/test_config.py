from __future__ import annotations

import re
from pathlib import Path

import pytest

from fam.config import MODEL_OPTION_RANGES, Params, load_params, parse_override, parse_params, range_table
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


# --------------------------------------------------------------------------------------------
# Allowed ranges: every numeric setting is checked at load time.

BAD_VALUES = [
    # (--set text, the message it must give: key, value as parsed, allowed range)
    ("optimise.steps=-1", "optimise.steps = -1: must be an integer >= 0"),
    ("optimise.lr=0", "optimise.lr = 0.0: must be a number > 0"),
    ("optimise.lr=-0.01", "optimise.lr = -0.01: must be a number > 0"),
    ("groups.max_batch_views=0", "groups.max_batch_views = 0: must be an integer >= 2"),
    ("groups.max_batch_views=-3", "groups.max_batch_views = -3: must be an integer >= 2"),
    ("models.inverter.steps=-5", "models.inverter.steps = -5: must be an integer >= 0"),
    ("optimise.weights.anonymity=-1", "optimise.weights.anonymity = -1.0: must be a number >= 0"),
    ("optimise.weights.consistency=-10", "optimise.weights.consistency = -10.0: must be a number >= 0"),
    ("optimise.weights.attribute=-0.15", "optimise.weights.attribute = -0.15: must be a number >= 0"),
    ("optimise.betas=[2,3]", "optimise.betas[0] = 2.0: must be a number in [0, 1)"),
    ("groups.single_image_views=-1", "groups.single_image_views = -1: must be an integer >= 1"),
    ("key.truncation_psi=0", "key.truncation_psi = 0.0: must be a number in (0, 1]"),
    ("key.truncation_psi=5", "key.truncation_psi = 5.0: must be a number in (0, 1]"),
    ("runtime.threads=-4", "runtime.threads = -4: must be an integer >= 0"),
    ("optimise.lr=.nan", "optimise.lr = nan: must be a finite number > 0"),
    ("evaluate.mapper.train_fraction=1", "evaluate.mapper.train_fraction = 1.0: must be a number in (0, 1)"),
    ("training.prior.resolution=48", "training.prior.resolution = 48: must be a power of two in [32, 1024]"),
    ("training.prior.channels={4: 0}", "training.prior.channels[4] = 0: must be an integer >= 1"),
    (
        "models.generator.resolution=100",
        "models.generator.resolution = 100: must be a power of two in [32, 1024]",
    ),
    (
        "evaluate.recognizers=[{name: dlib, batch_size: 0}]",
        "evaluate.recognizers[0].batch_size = 0: must be an integer >= 1",
    ),
    (
        "mlops.research_keys=[1, -1]",
        "mlops.research_keys[1] = -1: must be an integer >= 0",
    ),
    ("groups.augment.seed=-1", "groups.augment.seed = -1: must be an integer in [0, 4294967296)"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_out_of_range_setting_names_key_value_and_range(override, message):
    with pytest.raises(ConfigError) as info:
        load_params("params.yaml", dict([parse_override(override)]))  # what --set does
    assert str(info.value) == message


def test_cross_field_and_model_option_checks():
    with pytest.raises(ConfigError, match=r"groups\.augment: crop_min = 0\.9 is above crop_max = 0\.8"):
        parse_params({"groups": {"augment": {"crop_min": 0.9, "crop_max": 0.8}}})
    with pytest.raises(ConfigError, match=r"models\.inverter\.lr.*must be a number, got 'fast'"):
        parse_params({"models": {"inverter": {"name": "projection", "lr": "fast"}}})
    # options are checked for the model named; another model's option of the same name is its own
    spec = parse_params({"models": {"generator": {"name": "stylegan2", "noise_seed": None}}}).models.generator
    assert spec.options["noise_seed"] is None
    assert parse_params({"mlops": {"research_keys": [3, 7]}}).mlops.research_keys == (3, 7)


def test_shipped_settings_test_settings_and_defaults_are_in_range():
    from tests.conftest import TINY_SETTINGS

    shipped = load_params("params.yaml")
    assert parse_params(shipped.to_dict()) == shipped
    assert parse_params(TINY_SETTINGS).optimise.steps == TINY_SETTINGS["optimise"]["steps"]
    defaults = Params()  # every default written in fam/config.py passes its own range
    assert parse_params(defaults.to_dict()) == defaults
    # the documented special values stay allowed
    special = parse_params(
        {"optimise": {"steps": 0}, "runtime": {"threads": 0}, "key": {"truncation_psi": 1}}
    )
    assert (special.optimise.steps, special.runtime.threads, special.key.truncation_psi) == (0, 0, 1.0)


def test_model_option_ranges_name_registered_models():
    from fam.models import factory
    from fam.recognizers import RecognizerOptions

    for role, name in MODEL_OPTION_RANGES:
        assert name == "*" if role == "recognizer" else name in factory.available(role), (role, name)
    assert set(MODEL_OPTION_RANGES["recognizer", "*"]) <= set(RecognizerOptions.__dataclass_fields__)


def test_settings_doc_lists_every_range():
    """docs/settings.md shows exactly the ranges the code checks."""
    doc = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    rows = re.findall(r"^\| `([^`]+)`( \([^)]+\))? \| ([^|]+) \|", doc, flags=re.M)
    documented = [(key + model, allowed.strip()) for key, model, allowed in rows]
    expected = range_table()
    missing = [f"| `{k}` | {r} |" for k, r in expected if (k, r) not in documented]
    stale = [k for k, r in documented if (k, r) not in expected]
    assert not missing and not stale, f"docs/settings.md lacks {missing}; lists stale rows {stale}"
