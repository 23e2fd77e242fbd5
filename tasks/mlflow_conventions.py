"""How fam's records map onto MLflow's own conventions (pure functions; no tracking store).

* where lineage goes: a run's own override, then ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME``,
  then ``params.yaml``;
* the standard ``mlflow.*`` run tags (source, git commit, user, description) and the experiment
  kind that makes MLflow 3's UI open the experiment as model development, not GenAI;
* metric names grouped with ``/`` by the evaluation that computes them, with the old flat name
  kept whole after the group so every old name maps to exactly one new one;
* the run description: the evaluation report with its images pointed at the run's artifacts;
* what ``lineage.log_originals: false`` withholds from the store.

:mod:`tasks.mlflow_lineage` applies these when it writes a run.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fam.config import Params
from fam.provenance import code_version

# The experiment tag MLflow 3's UI reads to choose between its GenAI and model-development views
# (its values in mlflow 3.17: genai_development, custom_model_development, ...).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

SOURCE_TYPE = "JOB"  # every run is written by a Prefect flow or a DVC stage, never interactively
MAX_NOTE_CHARS = 8000  # MLflow's limit on a tag value; the description is a tag


# --------------------------------------------------------------------------------------------
# Where lineage goes.


@dataclass(frozen=True)
class StoreAddress:
    """Tracking URI and experiment with where each came from (printed by ``fam audit``)."""

    tracking_uri: str
    experiment: str
    tracking_uri_from: str  # "override mlops.tracking_uri", "MLFLOW_TRACKING_URI" or "mlops.tracking_uri"
    experiment_from: str  # likewise for the experiment


def overridden_keys(overrides: Mapping[str, Any] | Iterable[str] | None) -> frozenset[str]:
    """The dotted settings a run was given explicitly: a flow's ``overrides`` parameter
    (``{"mlops.tracking_uri": ...}``, nested mappings too) or CLI ``--set KEY=VALUE`` strings."""
    if overrides is None:
        return frozenset()
    if isinstance(overrides, Mapping):
        keys: set[str] = set()
        for k, v in overrides.items():
            if isinstance(v, Mapping) and v:
                keys |= {f"{k}.{sub}" for sub in overridden_keys(v)}
            else:
                keys.add(str(k))
        return frozenset(keys)
    return frozenset(o.split("=", 1)[0].strip() for o in overrides)


def store_address(
    params: Params,
    environ: Mapping[str, str] | None = None,
    overridden: Collection[str] = (),
) -> StoreAddress:
    """Where lineage goes, most explicit first: a setting given for this run (a flow's
    ``overrides`` parameter, ``--set``), then MLflow's environment variables (as in every MLflow
    client), then ``params.yaml``.

    So a container, a CI job or a Prefect work pool (its ``job_variables.env``) points lineage
    elsewhere without editing the settings (whose digest would then change), and one flow run can
    still name its own store. An empty variable counts as unset.
    """
    env = os.environ if environ is None else environ

    def pick(key: str, variable: str, from_params: str) -> tuple[str, str]:
        if f"mlops.{key}" in overridden:
            return from_params, f"override mlops.{key}"
        if env.get(variable, ""):
            return env[variable], variable
        return from_params, f"mlops.{key}"

    uri, uri_from = pick("tracking_uri", "MLFLOW_TRACKING_URI", params.mlops.tracking_uri)
    experiment, experiment_from = pick("experiment", "MLFLOW_EXPERIMENT_NAME", params.mlops.experiment)
    return StoreAddress(uri, experiment, uri_from, experiment_from)


def is_local_store(tracking_uri: str) -> bool:
    """A store this process writes itself (sqlite file, folder), not a tracking server."""
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else ""
    return scheme in ("", "file", "sqlite")


# --------------------------------------------------------------------------------------------
# Standard tags.


def user() -> str:
    """The account that ran the job; containers may run under a uid with no passwd entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid-{os.getuid()}"


def standard_tags(source_name: str) -> dict[str, str]:
    """``mlflow.source.*`` and ``mlflow.user``: what MLflow's UI shows as source, version and user."""
    tags = {
        "mlflow.source.name": source_name,
        "mlflow.source.type": SOURCE_TYPE,
        "mlflow.user": user(),
    }
    version = code_version()
    if re.fullmatch(r"[0-9a-f]{40}", version.commit):  # outside git (an installed wheel) there is none
        tags["mlflow.source.git.commit"] = version.commit
    return tags


# --------------------------------------------------------------------------------------------
# Metric names.

# Old flat name prefix -> group (the evaluation of fam.evaluate.metrics that computes it). First
# match wins, so longer prefixes come before shorter ones they share a start with.
METRIC_GROUPS: tuple[tuple[str, str], ...] = (
    ("psr_anonymity", "anonymity"),
    ("score_anonymity", "anonymity"),
    ("psr_unlinkability", "unlinkability"),
    ("score_unlinkability", "unlinkability"),
    ("dsys_", "unlinkability"),
    ("n_mated_", "unlinkability"),
    ("psr_noninvert", "noninvertibility"),
    ("score_noninvert", "noninvertibility"),
    ("eer_", "utility"),
    ("auc_", "utility"),
    ("n_genuine_pairs_", "utility"),
    ("n_impostor_pairs_", "utility"),
    ("fid", "quality"),
    ("psr_keys_", "key_robustness"),
    ("n_keys", "key_robustness"),
    ("n_items", "release"),
    ("n_people", "release"),
)
OTHER_GROUP = "other"  # a metric of an evaluation registered outside fam (still logged, never dropped)
TRAINING_GROUP = "training"


def metric_name(flat: str, group: str | None = None) -> str:
    """``psr_anonymity_dlib_fmr1e-3`` -> ``anonymity/psr_anonymity_dlib_fmr1e-3``.

    The flat name (as in ``metrics.json`` and ``dvc metrics show``) stays whole after the group,
    so the rename is reversible: :func:`flat_metric_name`. Characters MLflow refuses become ``_``.
    """
    if group is None:
        group = next((g for prefix, g in METRIC_GROUPS if flat.startswith(prefix)), OTHER_GROUP)
    safe = "".join(c if c.isalnum() or c in "_-. :" else "_" for c in flat)
    return f"{group}/{safe}"


def flat_metric_name(grouped: str) -> str:
    """The name before grouping (for runs written before lineage format 2 it is the name itself)."""
    return grouped.split("/", 1)[-1]


def metric_names(flat_names: list[str] | Mapping[str, Any]) -> dict[str, str]:
    """``{flat name: MLflow name}``, logged beside the metrics as ``evaluation/metric_names.json``."""
    return {name: metric_name(name) for name in sorted(flat_names)}


# --------------------------------------------------------------------------------------------
# The run description.

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def artifact_url(run_id: str, artifact_path: str) -> str:
    """A link MLflow's UI resolves from any of its pages: its own ``get-artifact`` route.

    The UI renders Markdown with relative links left as they are, and every UI page lives at the
    server's root (``/#/experiments/...``, or ``<static prefix>/#/...``), so a link relative to
    that root reaches the route that serves the run's artifact, under any static prefix.
    """
    return f"get-artifact?path={quote(artifact_path, safe='')}&run_uuid={quote(run_id, safe='')}"


def report_for_ui(markdown: str, run_id: str, folder: str, logged: set[str]) -> str:
    """``report.md`` with each image link to a logged file (``plots/roc.png``, relative to the
    report) pointing at that artifact of the run (``folder/plots/roc.png``); other links stay."""

    def link(m: re.Match[str]) -> str:
        target = m.group(2)
        if "://" in target or target.startswith(("/", "#")) or target not in logged:
            return m.group(0)
        return f"![{m.group(1)}]({artifact_url(run_id, f'{folder}/{target}')})"

    return _IMAGE.sub(link, markdown)


def note(markdown: str, artifact: str) -> str:
    """``mlflow.note.content`` (the run's description in the UI), cut to MLflow's tag limit."""
    if len(markdown) <= MAX_NOTE_CHARS:
        return markdown
    tail = f"\n\n... (cut at {MAX_NOTE_CHARS} characters; the whole text is the artifact `{artifact}`)\n"
    return markdown[: MAX_NOTE_CHARS - len(tail)] + tail


def release_summary(tags: Mapping[str, str]) -> str:
    """The description of a release run that has no evaluation report."""
    t = {k.removeprefix("fam."): v for k, v in tags.items()}
    rows = [
        ("release", f"`{t.get('release_dir', '?')}`"),
        ("images", t.get("n_images", "?")),
        ("key", f"{t.get('key_fingerprint', '?')} ({t.get('key_kind', '?')})"),
        ("generator", f"`{t.get('generator_id', '?')}`"),
        ("params digest", f"`{t.get('params_digest', '?')[:12]}`"),
        ("code", t.get("code_version", "?")),
    ]
    return "\n".join(
        [
            "# FaceAnonyMixer release",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in rows),
            "",
            "No evaluation in this run.",
            "",
        ]
    )


# --------------------------------------------------------------------------------------------
# What lineage.log_originals: false withholds.

WITHHELD = "withheld (lineage.log_originals is false)"


def settings_for_store(tree: Mapping[str, Any], log_originals: bool) -> dict[str, Any]:
    """Resolved settings as the store may hold them: the subset's real names become a count."""
    out = copy.deepcopy(dict(tree))
    names = ((out.get("mlops") or {}).get("subset") or {}).get("person")
    if not log_originals and names:
        out["mlops"]["subset"]["person"] = f"{len(names)} names {WITHHELD}"
    return out


_GX_ROW_QUOTES = {
    "partial_unexpected_list",
    "partial_unexpected_index_list",
    "partial_unexpected_counts",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
}


def validation_report_for_store(text: str, log_originals: bool) -> str:
    """A validation report as the store may hold it: GX's unexpected examples can be input paths
    (real names), so they are dropped and only their count stays."""
    if log_originals:
        return text
    doc = json.loads(text)
    for result in doc.get("results", []):
        if result.get("examples"):
            result["examples"] = []
            result["examples_withheld"] = WITHHELD
    for suite_result in doc.get("gx_results", []):  # GX's own results quote the same rows
        for result in suite_result.get("results", []):
            for name in _GX_ROW_QUOTES & set(result.get("result") or {}):
                result["result"][name] = WITHHELD
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
