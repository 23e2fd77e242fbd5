"""The stolen-key attack: its protection is the protection, and what it recovers is scored."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fam.evaluate.stolen_key import MethodModels, stolen_key_attack, unrolled_protection
from fam.keys import key_latent, research_key
from fam.layers import resolve_groups
from fam.models.factory import build_models
from fam.optimise import ViewBatch, protect_views

pytestmark = pytest.mark.unit


@pytest.fixture
def method(tiny_params) -> MethodModels:
    b = build_models(tiny_params.models, torch.device("cpu"))
    layers = resolve_groups(tiny_params.layers, b.generator.num_ws)
    return MethodModels(
        b.generator, b.identity, b.attribute, layers, tiny_params.mixing, tiny_params.optimise
    )


def _latents(m: MethodModels, n: int, seed: int) -> torch.Tensor:
    g = m.generator
    torch.manual_seed(seed)
    return g.w_avg.reshape(1, 1, -1).repeat(n, g.num_ws, 1) + 0.3 * torch.randn(n, g.num_ws, g.w_dim)


class _Oracle:
    """An inverter that knows the answer for the images it was built with (a perfect inverter)."""

    def __init__(self, images: torch.Tensor, ws: torch.Tensor) -> None:
        self.images, self.ws = images, ws

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        assert torch.equal(images, self.images)
        return self.ws.clone()


def test_the_unrolled_protection_is_the_protection(tiny_params, method):
    """With all of Algorithm 1's steps unrolled, the attacker's protection is protect_views itself
    (Adam, milestones, the consistency term across a person's views, all layers moving)."""
    m = method
    w = _latents(m, 4, 3)
    groups = torch.tensor([0, 0, 1, 1])
    real = m.generator.synthesis(w).detach()
    w_key = key_latent(research_key(1), m.generator)
    settings = tiny_params.replace({"optimise.lr_milestones": [0.5], "optimise.lr_gamma": 0.5})
    m = MethodModels(m.generator, m.identity, m.attribute, m.groups, settings.mixing, settings.optimise)
    expected = protect_views(
        ViewBatch(real, w, groups, 2),
        w_key,
        m.generator,
        m.identity,
        m.attribute,
        m.groups,
        m.mixing,
        m.optimise,
    ).ws
    got = unrolled_protection(w, w_key, groups, 2, m, m.optimise.steps, real_images=real)
    assert m.optimise.steps > 1 and not torch.allclose(expected, w, atol=1e-3)  # it moved
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # and it is differentiable in the candidate originals, through the losses' real embeddings too
    w_req = w.clone().requires_grad_(True)
    unrolled_protection(w_req, w_key, groups, 2, m, 2).sum().backward()
    assert w_req.grad is not None and bool(w_req.grad.abs().sum() > 0)


def test_an_identity_protection_is_inverted_exactly(method):
    """Known answer: when the key's layers are the original's own and nothing is optimised, the
    protection is the identity and the attacker recovers the original exactly (PSR 0)."""
    m = method
    m = MethodModels(
        m.generator, m.identity, m.attribute, m.groups, m.mixing, dataclasses.replace(m.optimise, steps=0)
    )
    w_key = key_latent(research_key(1), m.generator)
    w = _latents(m, 2, 4)
    ident = list(m.groups.identity)
    w[:, ident] = w_key[:, ident]
    with torch.no_grad():
        protected = m.generator.synthesis(unrolled_protection(w, w_key, torch.tensor([0, 0]), 1, m, 0))
        assert torch.equal(protected, m.generator.synthesis(w))
    res = stolen_key_attack(
        protected,
        [0, 0],
        w_key,
        m,
        _Oracle(protected, w),
        iterations=3,
        unroll_steps=0,
        lr=0.01,
        identity_weight=0.5,
    )
    assert torch.allclose(res.reconstructions, m.generator.synthesis(w).clamp(-1, 1), atol=1e-6)
    assert res.losses[0] == pytest.approx(0.0, abs=1e-6)


def test_the_attack_fits_the_protected_images_deterministically(method):
    m = method
    w_key = key_latent(research_key(2), m.generator)
    w_true = _latents(m, 3, 5)
    ids = torch.tensor([0, 0, 1])
    with torch.no_grad():
        protected = m.generator.synthesis(unrolled_protection(w_true, w_key, ids, 2, m, m.optimise.steps))

    class _Start:  # the attacker starts from an inversion of the protected images (here: off by noise)
        def invert(self, images: torch.Tensor) -> torch.Tensor:
            return w_true + 0.2 * torch.randn(w_true.shape, generator=torch.Generator().manual_seed(0))

    def attack():
        return stolen_key_attack(
            protected,
            [0, 0, 1],
            w_key,
            m,
            _Start(),
            iterations=8,
            unroll_steps=2,
            lr=0.02,
            identity_weight=0.5,
        )

    a, b = attack(), attack()
    assert a.reconstructions.shape == protected.shape and len(a.losses) == 8
    assert a.losses[-1] < a.losses[0]  # its re-protection comes closer to what was released
    assert torch.equal(a.reconstructions, b.reconstructions)


def test_the_evaluation_scores_the_stolen_key_attack(tiny_params, tmp_path: Path):
    from fam.evaluate.runner import evaluate_release
    from fam.protect import protect_dataset
    from tests.helpers.faces import make_face_folder
    from tests.helpers.tiny_models import TinyRecognizer

    params = tiny_params.replace({"release.allow_research_keys": True})
    faces = make_face_folder(tmp_path / "aligned" / "images", {"Alice": 3, "Bob": 2, "Carol": 1})
    protect_dataset(faces, tmp_path / "rel", research_key(1), params, progress=False)
    make_face_folder(tmp_path / "imp" / "images", {f"other_{i}": 3 for i in range(8)}, seed=9)
    eval_params = params.replace(
        {
            "evaluate.attacks": ["stolen_key"],
            "evaluate.baselines": [],
            "evaluate.fid": False,
            "evaluate.min_impostor_pairs": 100,
            "evaluate.mapper.train_fraction": 0.05,  # everyone held out
            "evaluate.stolen_key.iterations": 2,
            "evaluate.stolen_key.unroll_steps": 0,  # all of the release's steps: exact
            "evaluate.image_size": 32,
        }
    )
    result = evaluate_release(
        tmp_path / "aligned",
        tmp_path / "rel",
        tmp_path / "eval",
        eval_params,
        thresholds_from=tmp_path / "imp",
        recognizers=[TinyRecognizer()],
        progress=False,
    )
    assert 0.0 <= result.metrics["psr_noninvert_stolen_key_tiny_fmr1e-3"] <= 1.0
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "stolen key: 6 images, 2 iterations, 4 of 4 protection steps unrolled (exact)" in report
    assert ", best " in report
    assert "method from the release's settings.json" in report
