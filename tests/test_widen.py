"""Widening a trained prior's generator: the same images, then training goes on; bad targets refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fam.cli import cli
from fam.errors import InputError, OutputExistsError
from fam.models.stylegan2 import set_modconv_path
from fam.training import checkpoint as ckpt
from fam.training.prior import PriorTrainer, build_networks
from fam.training.widen import widen_prior_run, widen_prior_state
from tests.test_training import TINY, random_faces, tiny_prior_cfg

pytestmark = pytest.mark.unit

NARROW = {4: 16, 8: 16, 16: 8, 32: 8}
WIDE = {4: 24, 8: 16, 16: 16, 32: 8}  # grows the constant input, a 4 px layer and the 16 px block


def _trained_state(tmp_path: Path) -> Path:
    t = PriorTrainer(tiny_prior_cfg(channels=NARROW), random_faces(), torch.device("cpu"))
    for _ in range(3):
        t.train_step()
    t.save(tmp_path / "run" / "state.pt")
    (tmp_path / "run" / "log.jsonl").write_text(json.dumps({"step": 3, "kimg": 0.012}) + "\n")
    return tmp_path / "run" / "state.pt"


def _images(g_state: dict[str, torch.Tensor], channels: dict[int, int], path: str) -> torch.Tensor:
    g, _ = build_networks(tiny_prior_cfg(channels=channels))
    g.load_state_dict(g_state)
    set_modconv_path(g, path)  # type: ignore[arg-type]
    ws = g.mapping(torch.randn(3, TINY["w_dim"], generator=torch.Generator().manual_seed(1)))
    ws = ws.unsqueeze(1).expand(-1, g.num_ws, -1)
    noise = [torch.randn(s, generator=torch.Generator().manual_seed(2)) for s in g.noise_shapes(3)]
    with torch.no_grad():
        return g.synthesis(ws, noise)


@pytest.mark.parametrize("path", ["fused", "split"])
def test_widened_generator_draws_the_same_images(tmp_path: Path, path: str) -> None:
    state = ckpt.load(_trained_state(tmp_path))
    grown = widen_prior_state(state, tiny_prior_cfg(channels=WIDE, d_channels=NARROW))
    assert grown["g"]["convs.2.conv.weight"].shape[1] == 16  # the 16 px block did grow
    for key in ("g", "g_ema"):
        torch.testing.assert_close(
            _images(grown[key], WIDE, path), _images(state[key], NARROW, path), rtol=1e-5, atol=1e-5
        )
    assert all(torch.equal(grown["d"][k], v) for k, v in state["d"].items())  # D untouched


def test_a_widened_state_trains_on_and_keeps_its_adam_moments(tmp_path: Path) -> None:
    source = _trained_state(tmp_path)
    target = tiny_prior_cfg(channels=WIDE, d_channels=NARROW)
    event = widen_prior_run(source, tmp_path / "wide", target)
    assert event["g_parameters_after"] > event["g_parameters_before"] and event["kimg"] == 0.012
    log = (tmp_path / "wide" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2 and json.loads(log[-1])["event"] == "widen"  # the curve stays one file
    old, new = ckpt.load(source), ckpt.load(tmp_path / "wide" / "state.pt")
    moments_old, moments_new = old["opt_g"]["state"], new["opt_g"]["state"]
    names = list(dict(build_networks(target)[0].named_parameters()))
    i = names.index("convs.2.conv.weight")
    sq_old, sq_new = moments_old[i]["exp_avg_sq"], moments_new[i]["exp_avg_sq"]
    assert torch.equal(sq_new[:, :8, :, :, :], sq_old)  # old entries keep theirs
    assert torch.allclose(sq_new[:, 8:], sq_old.mean().expand_as(sq_new[:, 8:]))  # new: the mean, not 0
    t = PriorTrainer(target, random_faces(), torch.device("cpu"))
    t.load(tmp_path / "wide" / "state.pt")
    assert t.step == 3
    stats = t.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_widening_refuses_narrowing_a_changed_d_and_an_existing_output(tmp_path: Path) -> None:
    source = _trained_state(tmp_path)
    state = ckpt.load(source)
    with pytest.raises(InputError, match="cannot narrow"):
        widen_prior_state(state, tiny_prior_cfg(channels={**WIDE, 16: 4}, d_channels=NARROW))
    with pytest.raises(InputError, match="d_channels"):
        widen_prior_state(state, tiny_prior_cfg(channels=WIDE))  # D would mirror the new widths
    with pytest.raises(InputError, match="nothing to widen"):
        widen_prior_state(state, tiny_prior_cfg(channels=NARROW))
    with pytest.raises(OutputExistsError):
        widen_prior_run(source, source.parent, tiny_prior_cfg(channels=WIDE, d_channels=NARROW))
    t = PriorTrainer(tiny_prior_cfg(channels=WIDE, d_channels=NARROW), random_faces(), torch.device("cpu"))
    with pytest.raises(InputError, match="cannot resume"):
        t.load(source)  # the unwidened state does not silently load into the wider G


def test_cli_widen_prior(tmp_path: Path) -> None:
    source = _trained_state(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(
        "training:\n  prior:\n"
        + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in TINY.items() if k != "channels")
        + "    channels: {4: 24, 8: 16, 16: 16, 32: 8}\n    d_channels: {4: 16, 8: 16, 16: 8, 32: 8}\n"
    )
    result = CliRunner().invoke(
        cli, ["widen-prior", "--from", str(source), "--out", str(tmp_path / "wide"), "--params", str(params)]
    )
    assert result.exit_code == 0, result.output
    assert '"event": "widen"' in result.output and (tmp_path / "wide" / "state.pt").is_file()


def test_a_narrow_lifeboat_resumes_into_the_wider_generator(tmp_path: Path) -> None:
    narrow = PriorTrainer(tiny_prior_cfg(channels=NARROW), random_faces(), torch.device("cpu"))
    narrow.train_step()
    narrow.write_lifeboat(tmp_path / "boat")
    wide = PriorTrainer(tiny_prior_cfg(channels=WIDE, d_channels=NARROW), random_faces(), torch.device("cpu"))
    wide.load_lifeboat(tmp_path / "boat")
    assert wide.step == 1 and any("grown to" in note for note in wide.notes)
    as_saved = {
        k: v.half().float() if v.is_floating_point() else v for k, v in narrow.G_ema.state_dict().items()
    }
    want = _images(as_saved, NARROW, "fused")  # the lifeboat holds fp16 weights
    torch.testing.assert_close(_images(wide.G_ema.state_dict(), WIDE, "fused"), want, rtol=1e-4, atol=1e-4)
    assert all(torch.isfinite(torch.tensor(v)) for v in wide.train_step().values())
    other = PriorTrainer(tiny_prior_cfg(channels=WIDE), random_faces(), torch.device("cpu"))
    with pytest.raises(InputError, match="cannot resume"):
        other.load_lifeboat(tmp_path / "boat")  # D's widths changed too: not a growth of G
