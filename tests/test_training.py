"""Training: split, pack round trip, prior steps (finite, EMA, exact resume), encoder step, inverter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fam.config import EncoderTrainingConfig, ModelSpec, PriorTrainingConfig
from fam.errors import InputError
from fam.models import factory
from fam.runtime import Engine
from fam.training.encoder import EncoderTrainer, load_prior
from fam.training.encoder_net import encoder_checkpoint
from fam.training.pack import load_pack, pack_faces
from fam.training.prior import PriorTrainer, snapshot_prior
from fam.training.splits import check_trainable, heldout_score, load_split

pytestmark = pytest.mark.unit

TINY = {"resolution": 32, "channels": {4: 16, 8: 16, 16: 16, 32: 8}, "w_dim": 32, "n_mlp": 2, "batch": 4}


def tiny_prior_cfg(**kw: object) -> PriorTrainingConfig:
    return PriorTrainingConfig(**{**TINY, "r1_interval": 2, "ema_kimg": 0.01, **kw})  # type: ignore[arg-type]


def random_faces(n: int = 12, r: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, r, r), generator=g, dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------- split


def test_split_file_is_consistent_and_holds_out_a_quarter() -> None:
    split = load_split()
    assert not split.train & split.heldout
    doc = json.loads(Path("splits/lfw_people_split.json").read_text())
    assert (
        doc["counts"]["heldout_people_with_2plus_images"] >= 0.2 * doc["counts"]["people_with_2plus_images"]
    )
    assert all(heldout_score(n) < 0.25 for n in list(split.heldout)[:50])


def test_split_refuses_heldout_and_unknown_people() -> None:
    split = load_split()
    held, train = sorted(split.heldout)[0], sorted(split.train)[0]
    check_trainable([train], split)
    with pytest.raises(InputError, match="held-out"):
        check_trainable([train, held], split)
    with pytest.raises(InputError, match="not in the LFW split"):
        check_trainable(["Nobody_At_All"], split)


# ---------------------------------------------------------------------------------------------- pack


def test_pack_round_trip_keeps_train_people_only(tmp_path: Path) -> None:
    split = load_split()
    train = sorted(split.train)[:2]
    held = sorted(split.heldout)[0]
    rng = np.random.default_rng(0)
    for person in [*train, held]:
        (tmp_path / "al" / person).mkdir(parents=True)
        for i in range(2):
            # smooth images so that JPEG error stays small
            base = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
            Image.fromarray(base).resize((64, 64), Image.Resampling.BILINEAR).save(
                tmp_path / "al" / person / f"{person}_{i:04d}.png"
            )
    (tmp_path / "al" / train[0] / "broken.png").write_bytes(b"not an image")
    rep = pack_faces(tmp_path / "al", tmp_path / "p.npz", resolution=32, quality=95)
    assert rep.images == 4 and rep.heldout_images_excluded == 2 and len(rep.rejects) == 1
    pack = load_pack(tmp_path / "p.npz")
    assert pack.images.shape == (4, 3, 32, 32) and pack.images.dtype == torch.uint8
    assert set(pack.person) == set(train)
    src = np.asarray(
        Image.open(tmp_path / "al" / train[0] / f"{train[0]}_0000.png").resize(
            (32, 32), Image.Resampling.LANCZOS
        )
    ).astype(float)
    err = np.abs(pack.images[0].permute(1, 2, 0).numpy().astype(float) - src).mean()
    assert err < 3.0  # JPEG q95 4:4:4 on a smooth image


def test_loader_refuses_a_pack_with_heldout_people(tmp_path: Path) -> None:
    split = load_split()
    held = sorted(split.heldout)[0]
    (tmp_path / "al" / held).mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "al" / held / "a.png")
    (tmp_path / "al" / sorted(split.train)[0]).mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "al" / sorted(split.train)[0] / "b.png")
    pack_faces(tmp_path / "al", tmp_path / "p.npz", resolution=32)
    z = dict(np.load(tmp_path / "p.npz"))
    z["person"] = np.array([held])  # a forged pack
    np.savez(tmp_path / "forged.npz", **z)
    with pytest.raises(InputError, match="held-out"):
        load_pack(tmp_path / "forged.npz")


# ---------------------------------------------------------------------------------------------- prior


def test_prior_steps_are_finite_and_ema_and_w_avg_move() -> None:
    t = PriorTrainer(tiny_prior_cfg(pl_weight=1.0, pl_interval=2), random_faces(), torch.device("cpu"))
    ema_before = [p.clone() for p in t.G_ema.parameters()]
    for _ in range(3):
        stats = t.train_step()
        assert all(np.isfinite(v) for v in stats.values())
    assert {"loss_g", "loss_d", "r1", "pl"} <= set(stats) | {"r1", "pl"}
    moved = [not torch.equal(a, b) for a, b in zip(ema_before, t.G_ema.parameters(), strict=True)]
    assert any(moved)
    assert t.G.latent_avg.norm() > 0 and torch.equal(t.G.latent_avg, t.G_ema.latent_avg)
    assert t.nimg == 12 and t.samples(4).shape == (4, 3, 32, 32)


def test_training_draws_fresh_noise_while_synthesis_keeps_the_fixed_buffers() -> None:
    """A G trained on its one fixed noise image paints the same inner face onto every latent (the
    first 170 kimg of the embedded prior did); training must use per-sample noise, users the buffers."""
    t = PriorTrainer(tiny_prior_cfg(pl_weight=1.0, pl_interval=1), random_faces(), torch.device("cpu"))
    seen: list[list[torch.Tensor] | None] = []
    synthesis = t.G.synthesis

    def spy(ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        seen.append(noise)
        return synthesis(ws, noise)

    t.G.synthesis = spy  # type: ignore[method-assign]
    t.train_step()
    assert len(seen) == 3  # G step, path length, D step
    for noise in seen:
        assert noise is not None and [tuple(n.shape) for n in noise] == t.G.noise_shapes(noise[0].shape[0])
        assert not torch.equal(noise[-1][0], noise[-1][1])  # per sample
    assert not torch.equal(seen[0][-1], seen[2][-1])  # per call
    ws = t.G.mapping(torch.randn(2, t.G.w_dim)).unsqueeze(1).expand(-1, t.G.num_ws, -1)
    with torch.no_grad():
        assert torch.equal(synthesis(ws), synthesis(ws))  # users get the fixed buffers
        other = [torch.randn(s) for s in t.G.noise_shapes(2)]
        assert not torch.equal(synthesis(ws, other), synthesis(ws))
    with pytest.raises(ValueError, match="noise images do not match"):
        synthesis(ws, [*other[:-1], torch.randn(2, 1, 3, 3)])


@pytest.mark.parametrize(("precision", "modconv"), [("fp32", "fused"), ("fp32", "split"), ("bf16", "split")])
def test_prior_resume_from_full_state_repeats_the_next_step_exactly(
    tmp_path: Path, precision: str, modconv: str
) -> None:
    cfg, faces = tiny_prior_cfg(), random_faces()
    cpu = Engine(torch.device("cpu"), precision, modconv)  # type: ignore[arg-type]
    a = PriorTrainer(cfg, faces, cpu)
    a.train_step()
    stats = a.train_step()
    assert all(np.isfinite(v) for v in stats.values())
    a.save(tmp_path / "state.pt")
    want = a.train_step()
    b = PriorTrainer(cfg, faces, cpu)
    b.load(tmp_path / "state.pt")
    got = b.train_step()
    assert got == want
    for pa, pb in zip(a.G_ema.state_dict().values(), b.G_ema.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


def test_prior_lifeboat_restores_weights_and_exports_a_loadable_generator(tmp_path: Path) -> None:
    cfg, faces, cpu = tiny_prior_cfg(), random_faces(), torch.device("cpu")
    a = PriorTrainer(cfg, faces, cpu)
    a.train_step()
    a.write_lifeboat(tmp_path / "lb")
    b = PriorTrainer(cfg, faces, cpu)
    b.load_lifeboat(tmp_path / "lb")
    assert b.step == 1 and torch.allclose(b.G.style[1].weight, a.G.style[1].weight, rtol=1e-3, atol=1e-3)
    gen, disc, sha = load_prior(tmp_path / "lb", cpu)
    assert gen.num_ws == a.G.num_ws and disc is not None and sha in gen.generator_id
    ws = a.G_ema.w_avg.expand(1, a.G.num_ws, -1)
    assert torch.allclose(gen.synthesis(ws), a.G_ema.synthesis(ws), atol=0.05)


def test_a_lifeboat_without_the_training_g_resumes_it_from_the_ema(tmp_path: Path) -> None:
    cfg, faces, cpu = tiny_prior_cfg(), random_faces(), torch.device("cpu")
    a = PriorTrainer(cfg, faces, cpu)
    a.train_step()
    a.write_lifeboat(tmp_path / "lb")
    (tmp_path / "lb" / "g_fp16.pt").unlink()  # the committed form
    b = PriorTrainer(cfg, faces, cpu)
    b.load_lifeboat(tmp_path / "lb")
    assert b.step == 1 and any("starts from the EMA" in note for note in b.notes)
    for (name, pg), pe in zip(b.G.named_parameters(), b.G_ema.parameters(), strict=True):
        assert torch.equal(pg, pe), name
    assert torch.allclose(b.G_ema.style[1].weight, a.G_ema.style[1].weight, rtol=1e-3, atol=1e-3)
    assert all(np.isfinite(v) for v in b.train_step().values())


def test_snapshot_of_a_running_state_is_the_export_a_stop_would_write(tmp_path: Path) -> None:
    cfg, faces, cpu = tiny_prior_cfg(), random_faces(), torch.device("cpu")
    trainer = PriorTrainer(cfg, faces, cpu)
    trainer.train_step()
    trainer.save(tmp_path / "state.pt")
    trainer.write_lifeboat(tmp_path / "export")
    assert snapshot_prior(tmp_path / "state.pt", tmp_path / "snap") == trainer.nimg
    snap, export = (
        torch.load(d / "prior.pt", weights_only=True) for d in (tmp_path / "snap", tmp_path / "export")
    )
    assert snap.keys() == export.keys() and torch.equal(snap["latent_avg"], export["latent_avg"])
    assert all(torch.equal(snap["g_ema"][k], v) for k, v in export["g_ema"].items())
    torch.save({"kind": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a prior training state"):
        snapshot_prior(tmp_path / "other.pt", tmp_path / "snap2")


# ---------------------------------------------------------------------------------------------- encoder


def test_encoder_step_runs_and_inverter_builds(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    prior = PriorTrainer(tiny_prior_cfg(), random_faces(), cpu)
    prior.train_step()
    prior.write_lifeboat(tmp_path / "lb")
    gen, disc, sha = load_prior(tmp_path / "lb", cpu)
    identity = factory.build("identity", ModelSpec("tiny"), factory.BuildContext(cpu))
    cfg = EncoderTrainingConfig(channels=(8, 8, 16, 16, 16), batch=4, identity=ModelSpec("tiny"))
    t = EncoderTrainer(cfg, gen, disc, random_faces(), cpu, identity)
    before = [p.clone() for p in t.E.parameters()]
    stats = t.train_step()
    assert {"pixel", "latent", "perceptual", "identity"} <= set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, t.E.parameters(), strict=True))
    torch.save(encoder_checkpoint(t.E, gen.w_avg, sha), tmp_path / "encoder.pt")
    from fam.io_utils import sha256_file

    spec = ModelSpec(
        "fam-encoder",
        {
            "checkpoint": str(tmp_path / "encoder.pt"),
            "sha256": sha256_file(tmp_path / "encoder.pt"),
            "refine_steps": 2,
        },
    )
    inv = factory.build("inverter", spec, factory.BuildContext(cpu, generator=gen))
    x = random_faces(2).float() / 127.5 - 1
    ws = inv.invert(x)
    assert ws.shape == (2, gen.num_ws, gen.w_dim) and torch.equal(ws, inv.invert(x))


# ---------------------------------------------------------------------------------------------- CLI


def test_params_yaml_prior_builds_the_planned_size() -> None:
    from fam.config import load_params
    from fam.training.prior import build_networks

    g, d = build_networks(load_params().training.prior)
    n_g = sum(p.numel() for p in g.parameters())
    assert g.num_ws == 10 and g.resolution == 64 and 3e6 < n_g < 6e6
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2,)


def test_cli_train_prior_runs_exports_and_resumes_from_lifeboat(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fam.cli import cli

    split = load_split()
    for person in sorted(split.train)[:3]:
        (tmp_path / "al" / person).mkdir(parents=True)
        Image.new("RGB", (32, 32), (120, 80, 60)).save(tmp_path / "al" / person / "a.png")
    pack_faces(tmp_path / "al", tmp_path / "p.npz", resolution=32)
    sets = [
        "--set", "training.prior.resolution=32",
        "--set", "training.prior.channels={4: 8, 8: 8, 16: 8, 32: 8}",
        "--set", "training.prior.w_dim=16", "--set", "training.prior.n_mlp=1",
        "--set", "training.prior.batch=2", "--set", "training.prior.fid_every_kimg=0",
        "--set", "runtime.device=cpu",
    ]  # fmt: skip
    base = ["train-prior", "--data", str(tmp_path / "p.npz"), "--kimg", "0.004", *sets]
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "run"), "--export", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    assert {"prior.pt", "g_fp16.pt", "d_fp16.pt", "meta.pt", "samples.png", "log.jsonl"} <= {
        p.name for p in (tmp_path / "exp").iterdir()
    }
    # A fresh machine: no state.pt in the new --out, so --resume continues from the lifeboat.
    res = CliRunner().invoke(
        cli, ["train-prior", "--data", str(tmp_path / "p.npz"), "--kimg", "0.008", *sets,
              "--out", str(tmp_path / "run2"), "--resume", "--lifeboat", str(tmp_path / "exp")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = res.output
    summary = json.loads(out[out.rindex('{"step"') :].splitlines()[0])  # tqdm shares the stream
    assert summary["step"] == 4 and summary["resumed_from"].startswith("lifeboat")
    # the first run's log carries over, so the training curve survives the move
    history = (tmp_path / "exp" / "log.jsonl").read_text().splitlines()
    lines = (tmp_path / "run2" / "log.jsonl").read_text().splitlines()
    assert lines[: len(history)] == history and json.loads(lines[len(history)])["event"] == "start"


# ---------------------------------------------------------------------------------------------- shipping


def test_ship_prior_writes_a_card_the_catalog_reads_and_the_generator_loads(tmp_path: Path) -> None:
    from fam.errors import OutputExistsError
    from fam.io_utils import sha256_file
    from fam.models.stylegan2 import load_generator_file
    from fam.training.ship import parse_gate_line, parse_layers_line, ship_prior
    from fam.weights_catalog import shipped_model_entries

    cfg, faces, cpu = tiny_prior_cfg(), random_faces(), torch.device("cpu")
    trainer = PriorTrainer(cfg, faces, cpu)
    trainer.train_step()
    trainer.write_lifeboat(tmp_path / "exp")
    gates = parse_gate_line("fid=40.3 face_rate=1.000 distinct=0.118 memorised=0.000 inv_match=nan")
    assets = tmp_path / "assets"
    scanned = "identity_layers=0,1,2 swap_change=0.4 swap_distinct=0.3 landmark_shift_px=1"
    layers, scan = parse_layers_line(scanned)
    card_file = ship_prior(
        tmp_path / "exp", "tiny-prior", gates, layers, layer_scan=scan, data={"images": 12}, assets=assets
    )
    card = json.loads(card_file.read_text())
    shipped = assets / "tiny-prior.pt"
    assert card["sha256"] == sha256_file(shipped) == sha256_file(tmp_path / "exp" / "prior.pt")
    assert card["gates"]["distinct"] == 0.118 and card["gates"]["inv_match"] is None  # nan: not measured
    assert card["architecture"]["resolution"] == 32 and card["images_seen"] == 4
    assert card["layers"] == {
        "coarse": [],
        "identity": [0, 1, 2],
        "fine": [3, 4, 5, 6, 7],  # 32 px: 8 W+ layers
        "scan": {"swap_change": 0.4, "swap_distinct": 0.3, "landmark_shift_px": 1.0},
    }
    (entry,) = shipped_model_entries(assets)
    assert (entry.name, entry.source, entry.location) == (
        "tiny-prior",
        "project",
        "assets/models/tiny-prior.pt",
    )
    gen = load_generator_file(shipped, card["sha256"])
    ws = trainer.G_ema.w_avg.expand(1, gen.num_ws, -1)
    assert torch.allclose(gen.synthesis(ws), trainer.G_ema.synthesis(ws), atol=0.05)  # fp16 weights
    # shipping the same bytes and split again is a no-op; another split or other weights need --replace
    ship_prior(tmp_path / "exp", "tiny-prior", gates, layers, assets=assets)
    with pytest.raises(OutputExistsError, match=r"identity layers \[0, 1, 2\], not \[0, 1\]"):
        ship_prior(tmp_path / "exp", "tiny-prior", gates, [0, 1], assets=assets)
    trainer.train_step()
    trainer.write_lifeboat(tmp_path / "exp")
    with pytest.raises(OutputExistsError, match="--replace"):
        ship_prior(tmp_path / "exp", "tiny-prior", gates, layers, assets=assets)
    assert sha256_file(shipped) == card["sha256"]  # nothing was overwritten
    assert json.loads(card_file.read_text())["layers"]["identity"] == [0, 1, 2]
    with pytest.raises(InputError, match="name=value"):
        parse_gate_line("fid 40")
    with pytest.raises(InputError, match="letters, digits and dashes"):
        ship_prior(tmp_path / "exp", "../x", gates, layers, assets=assets)
    with pytest.raises(InputError, match=r"contiguous run within 0\.\.7"):
        ship_prior(tmp_path / "exp", "other", gates, [0, 2], assets=assets)
    with pytest.raises(InputError, match="chose no layers"):
        parse_layers_line("identity_layers=none swap_change=nan swap_distinct=nan landmark_shift_px=nan")


def test_a_shipped_generator_loads_by_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fam import weights
    from fam.config import parse_params
    from fam.layers import resolve_groups_for
    from fam.models import stylegan2
    from fam.registry import Registry
    from fam.training.ship import ship_prior
    from fam.weights_catalog import shipped_model_entries

    trainer = PriorTrainer(tiny_prior_cfg(), random_faces(), torch.device("cpu"))
    trainer.write_lifeboat(tmp_path / "exp")
    ship_prior(tmp_path / "exp", "tiny-prior", {"fid": 99.0}, [1, 2, 3], assets=tmp_path / "models")
    (entry,) = shipped_model_entries(tmp_path / "models")
    registry = Registry[weights.WeightEntry]("model file", error=weights.MissingWeightsError)
    for e in [*weights.entries(), entry]:
        registry.register(e.name, e)
    monkeypatch.setattr(weights, "WEIGHTS", registry)
    monkeypatch.setattr(stylegan2, "WEIGHTS", registry)
    real_locate = weights.locate
    monkeypatch.setattr(
        weights, "locate", lambda e: tmp_path / "models" / "tiny-prior.pt" if e is entry else real_locate(e)
    )
    spec = ModelSpec("stylegan2", {"weights": "tiny-prior", "resolution": 32})
    gen = factory.build("generator", spec, factory.BuildContext(torch.device("cpu")))
    assert gen.resolution == 32 and entry.sha256 in gen.generator_id
    # its card's measured split is what `layers: auto` means for it, and it is part of its identity
    assert gen.layer_groups.identity == (1, 2, 3) and gen.generator_id.endswith(":identity1-3")
    groups = resolve_groups_for(parse_params({}).layers, gen)
    assert (groups.coarse, groups.identity, groups.fine) == ((0,), (1, 2, 3), (4, 5, 6, 7))
    explicit = parse_params({"layers": {"coarse": [0, 1], "identity": [2, 3, 4], "fine": [5, 6, 7]}})
    assert resolve_groups_for(explicit.layers, gen).identity == (2, 3, 4)  # written lists still win
    plain = stylegan2.load_generator_file(tmp_path / "models" / "tiny-prior.pt", entry.sha256)
    assert plain.layer_groups is None  # loaded by path: no card is consulted, the rule applies
    bad = ModelSpec("stylegan2", {"weights": "tiny-prior", "sha256": "0" * 64})
    with pytest.raises(weights.MissingWeightsError, match="expected 000000"):
        factory.build("generator", bad, factory.BuildContext(torch.device("cpu")))


def test_cli_ship_prior_refuses_an_empty_gates_file_and_a_missing_pack(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fam.cli import cli

    PriorTrainer(tiny_prior_cfg(), random_faces(), torch.device("cpu")).write_lifeboat(tmp_path / "exp")
    (tmp_path / "gates.txt").write_text("\n")
    (tmp_path / "layers.txt").write_text("identity_layers=0,1 swap_change=0.5\n")
    args = ["ship-prior", "--export", str(tmp_path / "exp"), "--gates", str(tmp_path / "gates.txt")]
    args += ["--layers", str(tmp_path / "layers.txt")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "is empty" in res.output and "bench_prior" in res.output
    (tmp_path / "gates.txt").write_text("fid=50.0\n")
    res = CliRunner().invoke(cli, [*args, "--data", str(tmp_path / "none.npz")])
    assert res.exit_code != 0 and "pack_dataset" in res.output, res.output
    (tmp_path / "layers.txt").write_text("")
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "scan_identity_layers" in res.output, res.output
