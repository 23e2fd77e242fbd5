"""``fam audit``: which releases used a key fingerprint, with which data and code, and is it revoked.

Answers from the MLflow lineage store written by the Prefect flows and the DVC ``report``
stage. It lives in the orchestration layer because it reads MLflow, which ``fam/`` never imports;
the ``fam`` command line finds it through the ``fam.commands`` entry point (pyproject.toml), so
``fam audit`` works while the library stays free of ``tasks``. ``python -m tasks.audit`` runs it
directly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from fam.cli.common import Command, load_cli_params, params_options
from fam.errors import UserError


@click.command(cls=Command)
@click.option("--fingerprint", required=True, help="public key fingerprint (fp-...), as printed by `fam key`")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@params_options
def audit(fingerprint: str, as_json: bool, params_path: Path, overrides: tuple[str, ...]) -> None:
    """Releases made with a key FINGERPRINT, their data and code versions, and revocation state.

    The store is ``MLFLOW_TRACKING_URI`` (else ``mlops.tracking_uri``), the experiment
    ``MLFLOW_EXPERIMENT_NAME`` (else ``mlops.experiment``). Each release is listed once, with
    every run that recorded it. A fingerprint the store has no record of is an error (exit 2).
    """
    if not fingerprint.startswith("fp-"):
        raise UserError(f"{fingerprint!r} is not a key fingerprint (they start with 'fp-'); never pass a key")
    params = load_cli_params(params_path, overrides)
    from tasks import mlflow_lineage as lineage  # lazy: imports MLflow

    store = lineage.Store.from_params(params, overrides=overrides)
    releases = lineage.releases_for(store, fingerprint)
    revocation = lineage.revocation_of(store, fingerprint)
    if not releases and revocation is None:
        raise UserError(
            f"no release or revocation of {fingerprint} is recorded in {store.describe()}; check the "
            "fingerprint (`fam key fingerprint --key-file FILE`) and the store "
            "(MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME, else mlops.tracking_uri / mlops.experiment)"
        )
    answer = {
        "fingerprint": fingerprint,
        "revoked": revocation is not None,
        "revocation": revocation,
        "releases": releases,
        "tracking_uri": store.tracking_uri,
        "tracking_uri_from": store.tracking_uri_from,
        "experiment": store.experiment,
    }
    if as_json:
        click.echo(json.dumps(answer, indent=2, default=str))
        return
    state = "REVOKED" if revocation else "not revoked"
    click.echo(f"key {fingerprint}: {state} (lineage: {store.describe()})")
    if revocation:
        click.echo(
            f"  revoked {_time(revocation['time'])}: {revocation['reason']}; "
            f"replacement key {revocation['replacement_fingerprint'] or '-'}"
        )
    if not releases:
        click.echo("  no release recorded with this key")
    for r in releases:
        others = f" (+{len(r['runs']) - 1} later runs)" if len(r["runs"]) > 1 else ""
        click.echo(
            f"  release {r['release_dir']} ({r['n_images'] or '?'} images) run {r['run_id']}{others} "
            f"{_time(r['start_time'])}\n"
            f"    data {r['data_dvc_md5']}  aligned {str(r['aligned_manifest_sha256'])[:16]}  "
            f"code {str(r['git_commit'])[:12]}{' (dirty)' if r['git_dirty'] == 'true' else ''}  "
            f"params {str(r['params_digest'])[:16]}"
        )


def _time(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "?"


if __name__ == "__main__":
    audit()
