from __future__ import annotations

import pytest
import torch

from fam.errors import ConfigError
from fam.keys import key_latent, research_key
from fam.layers import resolve_groups
from fam.models.factory import build_models
from fam.optimise import ViewBatch, protect_views

pytestmark = pytest.mark.unit


@pytest.fixture
def bundle(tiny_params):
    return build_models(tiny_params.models, torch.device("cpu"))


def _batch(bundle, n=4, groups=(0, 0, 1, 1)):
    torch.manual_seed(5)
    g = bundle.generator
    w = g.w_avg.reshape(1, 1, -1).repeat(n, g.num_ws, 1) + 0.3 * torch.randn(n, g.num_ws, g.w_dim)
    images = g.synthesis(w).detach()
    return ViewBatch(images, w, torch.tensor(groups), len(set(groups)))


def _protect(bundle, params, batch, key_seed=1):
    """``protect_views`` with research key ``key_seed`` and the settings' layers, mixing and optimiser."""
    g = bundle.generator
    return protect_views(
        batch,
        key_latent(research_key(key_seed), g),
        g,
        bundle.identity,
        bundle.attribute,
        resolve_groups(params.layers, g.num_ws),
        params.mixing,
        params.optimise,
    )


def test_only_the_optimised_layers_move(tiny_params, bundle):
    """The authors' variant (identity layers only); the default (whole latent) is tested below."""
    g = bundle.generator
    layers = resolve_groups(tiny_params.layers, g.num_ws)
    batch = _batch(bundle)
    w_key = key_latent(research_key(1), g)
    mixing = tiny_params.replace({"mixing.optimise_layers": ["identity"]}).mixing
    res = protect_views(
        batch, w_key, g, bundle.identity, bundle.attribute, layers, mixing, tiny_params.optimise
    )
    ident = list(layers.identity)
    others = [i for i in range(g.num_ws) if i not in ident]
    # the non-optimised layers are exactly the naive mix: the real coarse/fine layers
    assert torch.equal(res.ws[:, others], batch.w_real[:, others])
    # the identity layers started at the key's and moved
    assert not torch.allclose(res.ws[:, ident], w_key.expand(4, -1, -1)[:, ident])
    assert res.images.shape == batch.images.shape and res.terms.total_per_group.shape == (2,)


def test_the_default_optimises_the_whole_latent_as_algorithm_1(tiny_params, bundle):
    layers = resolve_groups(tiny_params.layers, bundle.generator.num_ws)
    batch = _batch(bundle)
    assert tiny_params.mixing.optimise_layers == ("coarse", "identity", "fine")
    res = _protect(bundle, tiny_params, batch)
    for group in (layers.coarse, layers.fine):  # the real layers move too
        assert not torch.allclose(res.ws[:, list(group)], batch.w_real[:, list(group)])


def test_an_unresolved_auto_margin_is_refused(tiny_params, bundle):
    with pytest.raises(ConfigError, match="must be resolved"):
        _protect(bundle, tiny_params.replace({"optimise.margin": "auto"}), _batch(bundle))


def test_gradients_reach_only_the_parameter(tiny_params, bundle):
    g = bundle.generator
    assert all(not p.requires_grad for p in g.parameters())  # the factory freezes every model
    layers = resolve_groups(tiny_params.layers, g.num_ws)
    batch = _batch(bundle)
    cfg = tiny_params.optimise
    res = protect_views(
        batch,
        key_latent(research_key(1), g),
        g,
        bundle.identity,
        bundle.attribute,
        layers,
        tiny_params.mixing,
        cfg,
    )
    assert all(p.grad is None for p in g.parameters())
    assert float(res.terms.total) <= float(res.initial_terms.total) + 1e-4


def test_zero_steps_is_the_naive_mix(tiny_params, bundle):
    g = bundle.generator
    layers = resolve_groups(tiny_params.layers, g.num_ws)
    batch = _batch(bundle)
    w_key = key_latent(research_key(1), g)
    cfg = tiny_params.replace({"optimise.steps": 0}).optimise
    res = protect_views(batch, w_key, g, bundle.identity, bundle.attribute, layers, tiny_params.mixing, cfg)
    from fam.mixing import mix

    assert torch.equal(res.ws, mix(batch.w_real, w_key, layers, "paper"))


def test_batched_groups_match_groups_alone(tiny_params, bundle):
    g = bundle.generator
    layers = resolve_groups(tiny_params.layers, g.num_ws)
    w_key = key_latent(research_key(2), g)
    both = _batch(bundle)
    res = protect_views(
        both, w_key, g, bundle.identity, bundle.attribute, layers, tiny_params.mixing, tiny_params.optimise
    )
    first = ViewBatch(both.images[:2], both.w_real[:2], torch.tensor([0, 0]), 1)
    alone = protect_views(
        first, w_key, g, bundle.identity, bundle.attribute, layers, tiny_params.mixing, tiny_params.optimise
    )
    assert torch.allclose(res.ws[:2], alone.ws, atol=1e-5)


def test_on_step_reports_every_adam_step(tiny_params, bundle):
    g = bundle.generator
    layers = resolve_groups(tiny_params.layers, g.num_ws)
    seen: list[int] = []
    protect_views(
        _batch(bundle),
        key_latent(research_key(1), g),
        g,
        bundle.identity,
        bundle.attribute,
        layers,
        tiny_params.mixing,
        tiny_params.optimise,
        on_step=seen.append,
    )
    assert seen == list(range(1, tiny_params.optimise.steps + 1))


def test_the_loss_curve_starts_at_the_naive_mix_and_ends_at_the_result(tiny_params, bundle):
    res = _protect(bundle, tiny_params, _batch(bundle))
    steps = tiny_params.optimise.steps
    assert res.curve.shape == (steps + 1, 2, 4)
    # columns in LossCurve.TERMS order: total, anonymity, consistency, attribute
    first = torch.stack([res.initial_terms.total_per_group, res.initial_terms.anonymity], dim=1)
    assert torch.allclose(res.curve[0, :, :2], first)
    last = torch.stack([res.terms.total_per_group, res.terms.consistency, res.terms.attribute], dim=1)
    assert torch.allclose(res.curve[-1][:, [0, 2, 3]], last, atol=1e-6)
    zero = _protect(bundle, tiny_params.replace({"optimise.steps": 0}), _batch(bundle))
    assert zero.curve.shape == (1, 2, 4)
