"""Protect tasks: a key's public identity, shards of people, protecting a shard, finishing a release.

Rules these tasks keep:

* Key material travels as a :class:`tasks.keyref.FlowKeyRef` (a path or a name) and is loaded
  inside the task that uses it, so neither a Prefect parameter, a cache key, a persisted result
  nor a log line ever holds a key.
* A protect shard is cached under (task, aligned-manifest hash, params digest, key fingerprint,
  people, output folder): a re-run after a crash skips finished shards, and the library's
  ``resume=True`` skips finished people on disk inside an interrupted one.
* Retries are for transient failures only (:func:`tasks.common.with_retries`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext

from fam.artifacts import AlignManifest, ProtectManifest
from fam.errors import UserError
from fam.io_utils import sha256_file
from tasks.common import settings
from tasks.keyref import FlowKeyRef

# --------------------------------------------------------------------------------------------
# Keys and releases: only public identities leave a task.


@task(name="key-identity")
def key_identity(key: dict[str, Any]) -> dict[str, str]:
    """``{"fingerprint", "kind"}`` of the referenced key (loads it, returns nothing secret)."""
    loaded = FlowKeyRef.from_dict(key).load()
    get_run_logger().info(
        "key %s (%s) from %s", loaded.fingerprint, loaded.kind, FlowKeyRef.from_dict(key).describe()
    )
    return {"fingerprint": loaded.fingerprint, "kind": loaded.kind}


@task(name="release-identity")
def release_identity(release_dir: str) -> dict[str, str]:
    """``{"fingerprint", "kind"}`` of the key a finished protect output was made with."""
    key = ProtectManifest.read(release_dir).key
    return {"fingerprint": key.fingerprint, "kind": key.kind}


@task(name="release-people")
def release_people(release_dir: str) -> list[str]:
    """The people a finished protect output holds, sorted."""
    return sorted({item.person for item in ProtectManifest.read(release_dir).items})


# --------------------------------------------------------------------------------------------
# Protect.


def shards(people: list[str], size: int) -> list[list[str]]:
    return [people[i : i + size] for i in range(0, len(people), size)]


@task(name="plan-shards")
def plan_shards(
    aligned_dir: str, params_path: str, overrides: dict[str, Any], people: list[str]
) -> dict[str, Any]:
    """The shards of people and the digests that key each shard's cache."""
    params = settings(params_path, overrides)
    return {
        "shards": shards(people, params.mlops.shard_size),
        "inputs_digest": sha256_file(Path(aligned_dir) / AlignManifest.FILENAME),
        "settings_digest": params.digest(),
    }


def _shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Inputs + settings digest + key fingerprint (+ people and output folder): never the key."""
    p = parameters
    parts = [
        context.task.name,
        p["inputs_digest"],
        p["settings_digest"],
        p["fingerprint"],
        ",".join(p["persons"]),
        str(Path(p["out_dir"]).resolve()),
        str(p.get("inversions_dir") or ""),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@task(name="protect-shard", cache_key_fn=_shard_cache_key, persist_result=True)
def protect_shard(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str,
    overrides: dict[str, Any],
    persons: list[str],
    inputs_digest: str,
    settings_digest: str,
    fingerprint: str,
    inversions_dir: str | None = None,
) -> dict[str, Any]:
    """Protect the people of one shard into ``out_dir`` (resumable); returns counts only."""
    from fam.protect import protect_dataset

    params = settings(params_path, overrides)
    if params.digest() != settings_digest:
        raise UserError("params.yaml changed while the flow ran; start the flow again")
    loaded = FlowKeyRef.from_dict(key).load()
    if loaded.fingerprint != fingerprint:
        raise UserError(f"the key at {FlowKeyRef.from_dict(key).describe()} changed while the flow ran")
    summary = protect_dataset(
        Path(aligned_dir),
        Path(out_dir),
        loaded,
        params,
        inversions=Path(inversions_dir) if inversions_dir else None,
        persons=persons,
        resume=True,
        shared=True,  # shards of one flow write disjoint persons into one folder at once
        progress=False,
        on_person=_log_person,
    )
    get_run_logger().info("protected %d images of %d people", summary.n_images, summary.n_persons)
    return {"persons": persons, "n_images": summary.n_images, "n_rejected": summary.n_rejected}


def _log_person(pseudonym: str, finished: int, total: int) -> None:
    get_run_logger().info("person %d/%d protected (%s)", finished, total, pseudonym)


@task(name="protect-finalise")
def protect_finalise(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str,
    overrides: dict[str, Any],
    persons: list[str],
    inversions_dir: str | None = None,
) -> dict[str, Any]:
    """One resumed pass over every person: finds all shards done on disk and writes the full manifest."""
    from fam.protect import protect_dataset

    params = settings(params_path, overrides)
    summary = protect_dataset(
        Path(aligned_dir),
        Path(out_dir),
        FlowKeyRef.from_dict(key).load(),
        params,
        inversions=Path(inversions_dir) if inversions_dir else None,
        persons=persons,
        resume=True,
        progress=False,
    )
    return {
        "manifest": str(summary.manifest_path),
        "n_images": summary.n_images,
        "n_persons": summary.n_persons,
        "n_rejected": summary.n_rejected,
        "key_fingerprint": summary.key_fingerprint,
        "key_kind": summary.key_kind,
    }
