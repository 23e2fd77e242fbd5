"""``fam key revoke``: record that a key is revoked, without Prefect.

Writes what the ``revoke-key`` flow's first step writes (:func:`tasks.mlflow_lineage.revoke`): a
run in the ``<experiment>-revocations`` experiment and the tag ``fam.key_revoked=true`` on every
release run made with the key, which ``fam audit`` then reports. It does not re-protect: the
flow does that, or ``fam protect`` under a new key. It lives in the orchestration layer because it
writes MLflow, which ``fam/`` never imports; the ``fam`` command line finds it through the
``fam.commands`` entry point ``key.revoke`` (pyproject.toml). ``python -m tasks.key_revoke`` runs
it directly.
"""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import Command, key_given, key_options, load_cli_params, params_options
from fam.errors import UserError
from fam.keys import load_key

SOURCE_NAME = "fam key revoke"  # mlflow.source.name of the revocation run


@click.command("revoke", cls=Command)
@key_options
@click.option(
    "--fingerprint",
    default=None,
    help="Revoke by the public fingerprint (fp-...) instead, e.g. when the key itself is lost.",
)
@click.option(
    "--reason", required=True, help="Why the key is revoked (recorded; never put key material here)."
)
@click.option(
    "--replacement-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The key file that replaces it (only its fingerprint is recorded).",
)
@params_options
def revoke(
    key_file: Path | None,
    key_env: str | None,
    research_seed: int | None,
    fingerprint: str | None,
    reason: str,
    replacement_key_file: Path | None,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Record that a key is revoked and mark every release made with it (MLflow lineage).

    The store is ``MLFLOW_TRACKING_URI`` (else ``mlops.tracking_uri``), the experiment
    ``MLFLOW_EXPERIMENT_NAME`` (else ``mlops.experiment``), as for ``fam audit``. A key revoked
    before is reported, not recorded twice. The releases stay where they are: withdraw them and
    protect their inputs again under a new key (``fam protect``, or the revoke-key flow).
    """
    if key_given(key_file, key_env, research_seed) == (fingerprint is not None):
        raise UserError("give the key to revoke (--key-file, --key-env or --research-seed) or --fingerprint")
    if fingerprint is None:
        fingerprint = load_key(key_file, key_env, research_seed).fingerprint
    elif not fingerprint.startswith("fp-"):
        raise UserError(f"{fingerprint!r} is not a key fingerprint (they start with 'fp-'); never pass a key")
    replacement = load_key(replacement_key_file, None, None).fingerprint if replacement_key_file else None
    if replacement == fingerprint:
        raise UserError(
            "the replacement key is the revoked key; create another with `fam key new --out FILE`"
        )
    params = load_cli_params(params_path, overrides)
    from tasks import mlflow_lineage as lineage  # lazy: imports MLflow

    store = lineage.Store.from_params(params, overrides=overrides)
    earlier = lineage.revocation_of(store, fingerprint)
    if earlier is not None:
        click.echo(
            f"key {fingerprint} was already revoked (run {earlier['run_id']}: {earlier['reason']}); "
            f"nothing recorded (lineage: {store.describe()})"
        )
        return
    run_id = lineage.revoke(
        store, fingerprint, reason=reason, replacement_fingerprint=replacement, source_name=SOURCE_NAME
    )
    releases = lineage.releases_for(store, fingerprint)
    click.echo(f"key {fingerprint} revoked: run {run_id} (lineage: {store.describe()})")
    click.echo(f"  {len(releases)} release(s) made with it are now marked revoked (`fam audit` lists them)")
    for r in releases:
        click.echo(f"    {r['release_dir']} (run {r['run_id']})")
    if releases:
        click.echo(
            "  withdraw them and protect their inputs again under a new key (`fam key new`, then "
            "`fam protect`), or run the revoke-key flow, which re-protects them"
        )


if __name__ == "__main__":
    revoke()
