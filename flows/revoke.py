"""Flow ``revoke-key``: revoke a key fingerprint and re-protect every release made with it.

Order matters for safety: the revocation is recorded first (so a failure later never leaves
the old key looking valid), then each affected release is protected again from its aligned
inputs under the new key reference, and the new runs are tagged with the key they replace.
The old release folders are left in place for the operator to withdraw: deleting published
data is a decision this flow does not take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from fam.errors import UserError
from flows.protect import protect_dataset
from tasks import lineage, protect


@flow(name="revoke-key")
def revoke_key(
    fingerprint: str,
    new_key: dict[str, Any],
    reason: str,
    params_path: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Revoke a key fingerprint and re-protect its releases under a new key.

    Args:
        fingerprint: The revoked key's public fingerprint (``fp-...``, from `fam key fingerprint`).
        new_key: A reference to the replacement key (``{"key_file": PATH}``, ``{"env_var": NAME}``
            or ``{"secret_block": NAME}``), never key material.
        reason: Why the key is revoked (recorded in MLflow).
        params_path: The settings file (params.yaml).
        overrides: Dotted settings overrides.

    Returns:
        The revocation's MLflow run id, the new fingerprint and each re-protected release.
    """
    log = get_run_logger()
    overrides = dict(overrides or {})
    releases = lineage.find_releases(params_path, overrides, fingerprint)
    new = protect.key_identity(new_key)
    if new["fingerprint"] == fingerprint:
        raise UserError("the new key is the revoked key; create another with `fam key new --out FILE`")
    revocation = lineage.record_revocation(params_path, overrides, fingerprint, reason, new["fingerprint"])
    redone = []
    seen: set[str] = set()
    for r in releases:
        if not r["release_dir"] or r["release_dir"] in seen:
            continue
        seen.add(r["release_dir"])
        old_out = Path(r["release_dir"])
        persons = protect.release_people(str(old_out))
        new_out = old_out.with_name(f"{old_out.name}-rekeyed-{new['fingerprint'][3:15]}")
        log.info("re-protecting %s (%d people) into %s", old_out, len(persons), new_out)
        result = protect_dataset(
            aligned_dir=r["aligned_dir"],
            out_dir=str(new_out),
            key=new_key,
            params_path=params_path,
            overrides=overrides,
            persons=persons,
            lineage_tags={"replaces_fingerprint": fingerprint, "replaces_run_id": r["run_id"]},
        )
        redone.append({"old": str(old_out), "new": str(new_out), "mlflow_run_id": result["mlflow_run_id"]})
    return {"revocation_run_id": revocation, "new_fingerprint": new["fingerprint"], "releases": redone}
