"""``fam train-prior`` and ``fam train-encoder`` (time-boxed, resumable training runs),
``fam widen-prior`` (a trained generator grown in place) and ``fam ship-prior`` (a trained prior
into the package)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import click

from fam.cli.common import load_cli_params, params_options
from fam.config import _to_plain
from fam.models.factory import resolve_device

_PATH = click.Path(path_type=Path)
F = TypeVar("F", bound=Callable[..., object])


def _common(func):  # type: ignore[no-untyped-def]
    for opt in reversed(
        [
            click.option(
                "--data", type=_PATH, required=True, help="Packed train faces (benchmarks/pack_dataset)."
            ),
            click.option(
                "--out", type=_PATH, required=True, help="Folder for the full training state and log."
            ),
            click.option("--resume", is_flag=True, help="Continue the state in --out."),
            click.option(
                "--export", type=_PATH, default=None, help="Write the returnable files here (device: $OUT)."
            ),
            click.option("--kimg", type=float, default=None, help="Total thousands of images to reach."),
            click.option("--minutes", type=float, default=None, help="Stop cleanly after this many minutes."),
            click.option("--dry-run", is_flag=True, help="Print the resolved settings and stop."),
        ]
    ):
        func = opt(func)
    return params_options(func)


@click.command("train-prior")
@_common
@click.option(
    "--lifeboat", type=_PATH, default=None, help="Returned lifeboat folder, used when --out has no state."
)
def train_prior(data, out, resume, export, kimg, minutes, dry_run, lifeboat, params_path, overrides) -> None:  # type: ignore[no-untyped-def]
    """Train the compact face StyleGAN2 prior on packed train-split faces."""
    params = load_cli_params(params_path, overrides)
    cfg = params.training.prior
    click.echo(json.dumps({"training.prior": _to_plain(cfg)}, indent=1))
    if dry_run:
        return
    import torch

    from fam.runtime import resolve_engine
    from fam.training.run_prior import train_prior_run

    engine = resolve_engine(params.runtime)
    click.echo(json.dumps({"engine": engine.describe(), "threads": torch.get_num_threads()}))
    summary = train_prior_run(cfg, data, out, engine, resume, lifeboat, export, kimg, minutes)
    click.echo(json.dumps(asdict(summary)))


@click.command("train-encoder")
@_common
@click.option("--prior", type=_PATH, required=True, help="Folder with prior.pt (+ d_fp16.pt, meta.pt).")
def train_encoder(data, out, resume, export, kimg, minutes, dry_run, prior, params_path, overrides) -> None:  # type: ignore[no-untyped-def]
    """Train the compact W+ encoder for a trained prior."""
    params = load_cli_params(params_path, overrides)
    cfg = params.training.encoder
    click.echo(json.dumps({"training.encoder": _to_plain(cfg)}, indent=1))
    if dry_run:
        return
    from fam.training.encoder import train_encoder_run

    summary = train_encoder_run(
        cfg, data, prior, out, resolve_device(params.runtime.device), resume, export, kimg, minutes
    )
    click.echo(json.dumps(summary))


@click.command("widen-prior")
@click.option("--from", "source", type=_PATH, required=True, help="state.pt of a `fam train-prior` run.")
@click.option("--out", type=_PATH, required=True, help="New run folder for the widened state.")
@params_options
def widen_prior(source: Path, out: Path, params_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Grow a trained prior's generator to training.prior.channels, keeping what it draws."""
    params = load_cli_params(params_path, overrides)
    from fam.training.widen import widen_prior_run

    event = widen_prior_run(source, out, params.training.prior)
    click.echo(json.dumps(event))
    click.echo(f"continue it with: fam train-prior --out {out} --resume --data PACK")


def _measured_by(flag: str, dest: str, script: str) -> Callable[[F], F]:
    """A required option naming the saved output of a benchmark script on the export."""
    return click.option(
        flag,
        dest,
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        required=True,
        help=f"Output of benchmarks/{script} on this export (its last line is read).",
    )


@click.command("ship-prior")
@click.option("--export", "export_dir", type=_PATH, required=True, help="Export folder of `fam train-prior`.")
@click.option("--name", default="fam-prior-64", show_default=True, help="Registry name (and file name).")
@_measured_by("--gates", "gates_file", "bench_prior.py")
@_measured_by("--layers", "layers_file", "scan_identity_layers.py")
@click.option("--data", type=_PATH, default=None, help="The pack it trained on (its meta goes on the card).")
@click.option("--replace", is_flag=True, help="Supersede a shipped model of the same name.")
def ship_prior(
    export_dir: Path, name: str, gates_file: Path, layers_file: Path, data: Path | None, replace: bool
) -> None:
    """Ship a trained prior inside the package (fam/assets/models/) with its model card."""
    from fam.training.pack import pack_meta
    from fam.training.ship import parse_gate_line, parse_layers_line, ship_prior

    gates = parse_gate_line(_last_line(gates_file, f"python -m benchmarks.bench_prior --prior {export_dir}"))
    layers, scan = parse_layers_line(
        _last_line(layers_file, f"python -m benchmarks.scan_identity_layers --prior {export_dir}")
    )
    card = ship_prior(
        export_dir,
        name,
        gates,
        layers,
        layer_scan=scan,
        data=pack_meta(data) if data else None,
        replace=replace,
    )
    click.echo(
        f"shipped {name}: {card.with_suffix('.pt')} (card {card}); use models.generator.weights: {name}"
    )


def _last_line(file: Path, made_by: str) -> str:
    lines = [line for line in file.read_text().splitlines() if line.strip()]
    if not lines:
        raise click.UsageError(f"{file} is empty: give the saved output of `{made_by}`")
    return lines[-1]
