"""Great Expectations suites that gate a release: nothing is published unless they pass.

Three suites, each over a pandas frame built from what is on disk:

* ``input``: the alignment manifest (``ALIGNED/manifest.csv``): unique input paths, known
  statuses, plausible sizes and detection scores, aligned files present, people with an image.
* ``release``: a protect output folder against its aligned inputs: one protected image per
  accepted input and nothing else, every file decodes and matches its manifest hash,
  ``release.json`` lists exactly those files, no original pixels, no latents, no real names and
  no key material anywhere under ``release/``.
* ``metrics``: ``EVAL/metrics.json`` with ``metric_families.json``: every value finite and
  within the range of its family (rate [0, 1], score [-1, 1], count and distance >= 0:
  :data:`fam.artifacts.evaluation.FAMILY_RANGES`); a metric without a family fails.

Files are read through their classes in :mod:`fam.artifacts`, so a missing, foreign or
malformed file stops a suite with an error naming the file and the command that writes it.
The frames hold derived booleans and numbers, never the key: Great Expectations echoes
unexpected values into its results, so the key is compared here and only the verdict enters.

Flows run the suites through the tasks of :mod:`tasks.validation`; the DVC ``validate`` stages
through ``python -m tasks.stages validate ...`` (:mod:`tasks.stages`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fam.artifacts import AlignManifest, AlignSummary, Metrics, ProtectManifest, ReleaseIndex
from fam.artifacts.evaluation import FAMILY_RANGES
from fam.errors import InputError, UserError
from fam.io_utils import atomic_write_text, sha256_bytes

RELEASE_SUFFIXES = {".png", ".json"}  # anything else in release/ (latents, arrays, keys) fails the suite
MIN_INPUT_SIDE = 32  # pixels; smaller inputs cannot hold a face the detector could align


class ValidationFailed(UserError):
    """A suite failed: the flow stops here and nothing is published."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failed = "; ".join(
            f"{r['expectation']}({r.get('column') or ''}): {r['why']}"
            + (
                f" [{', '.join(r['examples'])}{' ...' if r['unexpected_count'] > len(r['examples']) else ''}]"
                if r.get("examples")
                else ""
            )
            for r in report.failed
        )
        super().__init__(f"validation suite {report.suite!r} failed: {failed}")


def data_docs_dir(report_path: str | Path) -> Path:
    """Where the Data Docs of a report go: ``runs/validation/input.json`` -> ``.../input-data-docs/``."""
    path = Path(report_path)
    return path.with_name(f"{path.stem}-data-docs")


@dataclass
class ValidationReport:
    """One suite's verdict: our summary per expectation (``results``: the frame, the file or row at
    fault in ``examples``) and Great Expectations' own validation results (``gx_results``)."""

    suite: str
    success: bool
    n_rows: int
    results: list[dict[str, Any]] = field(default_factory=list)
    gx_results: list[dict[str, Any]] = field(default_factory=list)  # ExpectationSuiteValidationResult JSON
    _context: Any = field(default=None, repr=False, compare=False)  # the GX context holding the runs

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]

    def write(self, path: str | Path) -> Path:
        """The report as JSON at ``path`` and GX Data Docs (HTML) in :func:`data_docs_dir`."""
        path = Path(path)
        doc = {k: getattr(self, k) for k in ("suite", "success", "n_rows", "results", "gx_results")}
        atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
        if self._context is not None:
            site = data_docs_dir(path)
            self._context.add_data_docs_site(
                "fam",
                {
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(site.resolve()),  # GX wants it absolute
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
            self._context.build_data_docs(site_names=["fam"])
        return path

    def raise_for_failure(self) -> ValidationReport:
        if not self.success:
            raise ValidationFailed(self)
        return self


# --------------------------------------------------------------------------------------------
# Suites.


def validate_input_manifest(aligned_dir: str | Path) -> ValidationReport:
    """Suite ``input`` over ``ALIGNED/manifest.csv`` (and the aligned files it names)."""
    aligned_dir = Path(aligned_dir)
    rows = _read_align_manifest(aligned_dir)
    ok = rows["status"] == "aligned"
    rows["aligned_file_present"] = [
        bool(isinstance(p, str) and p and (aligned_dir / p).is_file()) if a else True
        for p, a in zip(rows["output_path"], ok, strict=True)
    ]
    people = rows.groupby("person")["status"].apply(lambda s: int((s == "aligned").sum())).rename("n_aligned")
    people = people.reset_index()
    aligned = rows[ok]
    E = _gx().expectations
    frames = {
        "rows": (
            rows,
            [
                (E.ExpectColumnValuesToBeUnique(column="input_path"), "every input appears once"),
                (E.ExpectColumnValuesToNotBeNull(column="person"), "every input belongs to a person"),
                (
                    E.ExpectColumnValuesToBeInSet(column="status", value_set=["aligned", "rejected"]),
                    "known status",
                ),
                (
                    E.ExpectColumnValuesToBeInSet(column="aligned_file_present", value_set=[True]),
                    "aligned file exists",
                ),
            ],
        ),
        "aligned": (
            aligned,
            [
                (E.ExpectColumnValuesToBeUnique(column="output_path"), "one aligned file per input"),
                (
                    E.ExpectColumnValuesToBeBetween(column="input_width", min_value=MIN_INPUT_SIDE),
                    "input width",
                ),
                (
                    E.ExpectColumnValuesToBeBetween(column="input_height", min_value=MIN_INPUT_SIDE),
                    "input height",
                ),
                (
                    E.ExpectColumnValuesToBeBetween(column="det_score", min_value=0.0, max_value=1.0),
                    "det score",
                ),
                (E.ExpectColumnValuesToBeBetween(column="face_px", min_value=1), "face size"),
                (E.ExpectColumnValuesToBeBetween(column="n_faces", min_value=1), "a face was found"),
            ],
        ),
        "people": (
            people,
            [
                (E.ExpectTableRowCountToBeBetween(min_value=1), "at least one person"),
                # A person whose every image was rejected is reported, not fatal, unless most are.
                (
                    E.ExpectColumnValuesToBeBetween(column="n_aligned", min_value=1, mostly=0.9),
                    "people with an image",
                ),
            ],
        ),
    }
    return _run_suite("input", frames)


def validate_release(
    out_dir: str | Path,
    aligned_dir: str | Path,
    *,
    expected_fingerprint: str | None = None,
    key_hex: str | None = None,
    persons: list[str] | None = None,
) -> ValidationReport:
    """Suite ``release`` over a protect output folder (``OUT/manifest.json`` + ``OUT/release/``).

    ``key_hex`` (when the key is at hand) is searched for, as hex and as raw bytes, in every
    file under ``release/``; ``persons`` limits the expected inputs to those people.
    """
    out_dir, aligned_dir = Path(out_dir), Path(aligned_dir)
    manifest = ProtectManifest.read(out_dir)
    release = out_dir / ReleaseIndex.FOLDER
    align_rows = _read_align_manifest(aligned_dir)
    accepted = align_rows[align_rows["status"] == "aligned"]
    if persons is not None:
        accepted = accepted[accepted["person"].isin(persons)]
    names = sorted(set(align_rows["person"].astype(str)))

    item_columns = ["input", "person", "pseudonym", "output", "output_sha256"]
    items = pd.DataFrame(
        [{c: getattr(it, c) for c in item_columns} for it in manifest.items], columns=item_columns
    )
    rejects = pd.DataFrame([r.to_dict() for r in manifest.rejects], columns=["input", "reason", "detail"])

    # Which accepted input each item (or reject) came from: (person, file stem) is unique in ALIGNED.
    def ident(person: Any, path: Any) -> str:
        return f"{person}/{Path(str(path)).stem}"

    reject_ids = {Path(str(p)).stem for p in rejects["input"]}
    item_ids = [ident(p, i) for p, i in zip(items["person"], items["input"], strict=True)]
    expected = pd.DataFrame(
        {"input": [ident(p, i) for p, i in zip(accepted["person"], accepted["input_path"], strict=True)]}
    )
    expected["n_outputs"] = [item_ids.count(i) for i in expected["input"]]
    expected["rejected_by_protect"] = [i.split("/", 1)[1] in reject_ids for i in expected["input"]]
    expected["accounted_for"] = (expected["n_outputs"] == 1) | (
        (expected["n_outputs"] == 0) & expected["rejected_by_protect"]
    )
    expected_ids = set(expected["input"])
    items["from_accepted_input"] = [i in expected_ids for i in item_ids]

    # Pixels of the originals: file bytes of the raw inputs and the aligned images, and decoded arrays.
    # The raw photos are where `fam align` read them (align_summary.json records the folder); one
    # that cannot be found fails the suite, since the leak check could not compare against it.
    raw_root = _align_input_root(aligned_dir)
    original_file_hashes: set[str] = set()
    original_pixel_hashes: set[str] = set()
    raw_found = {}
    for _, row in accepted.iterrows():
        raw = raw_root / str(row["input_path"]) if raw_root is not None else None
        raw_found[ident(row["person"], row["input_path"])] = raw is not None and raw.is_file()
        if raw is not None and raw.is_file():
            original_file_hashes.add(sha256_bytes(raw.read_bytes()))
            original_pixel_hashes.add(_pixel_hash(raw))
        al = aligned_dir / str(row["output_path"])
        if al.is_file():
            original_file_hashes.add(sha256_bytes(al.read_bytes()))
            original_pixel_hashes.add(_pixel_hash(al))

    expected["raw_input_found"] = [raw_found.get(i, False) for i in expected["input"]]
    listed = {str(o) for o in items["output"]}
    key_bytes = bytes.fromhex(key_hex) if key_hex else None
    files = sorted(p for p in release.rglob("*") if p.is_file()) if release.is_dir() else []
    name_re = re.compile("|".join(re.escape(n) for n in names if len(n) >= 3)) if names else None
    scan = []
    for f in files:
        rel = f.relative_to(out_dir).as_posix()
        data = f.read_bytes()
        is_image = f.suffix == ".png"
        decoded_hash = _pixel_hash(f) if is_image else None
        text = data.decode("utf-8", errors="ignore") if not is_image else ""
        scan.append(
            {
                "file": rel,
                "allowed_type": f.suffix.lower() in RELEASE_SUFFIXES,
                "listed_or_release_json": rel in listed
                or rel == f"{ReleaseIndex.FOLDER}/{ReleaseIndex.FILENAME}",
                "decodes": decoded_hash is not None if is_image else _json_ok(text),
                "is_original_copy": sha256_bytes(data) in original_file_hashes
                or (decoded_hash is not None and decoded_hash in original_pixel_hashes),
                "contains_key": _contains_key(data, key_hex, key_bytes),
                "contains_real_name": bool(name_re and (name_re.search(rel) or name_re.search(text))),
            }
        )
    scan_df = pd.DataFrame(
        scan,
        columns=[
            "file",
            "allowed_type",
            "listed_or_release_json",
            "decodes",
            "is_original_copy",
            "contains_key",
            "contains_real_name",
        ],
    )
    items["sha256_matches"] = [
        (out_dir / str(o)).is_file() and sha256_bytes((out_dir / str(o)).read_bytes()) == s
        for o, s in zip(items["output"], items["output_sha256"], strict=True)
    ]
    items["under_release"] = [str(o).startswith(f"{ReleaseIndex.FOLDER}/") for o in items["output"]]
    header = pd.DataFrame(
        [
            {
                "fingerprint_matches": expected_fingerprint is None
                or manifest.key.fingerprint == expected_fingerprint,
                "has_code_version": bool(manifest.code_version),
                "has_params_digest": bool(manifest.params_digest),
                "has_generator_id": bool(manifest.generator_id),
                "release_json_matches": _release_index_matches(out_dir, manifest),
            }
        ]
    )
    E = _gx().expectations
    true = [True]
    frames = {
        "header": (
            header,
            [
                (
                    E.ExpectColumnValuesToBeInSet(column="fingerprint_matches", value_set=true),
                    "key fingerprint",
                ),
                (E.ExpectColumnValuesToBeInSet(column="has_code_version", value_set=true), "code version"),
                (E.ExpectColumnValuesToBeInSet(column="has_params_digest", value_set=true), "params digest"),
                (E.ExpectColumnValuesToBeInSet(column="has_generator_id", value_set=true), "generator id"),
                (
                    E.ExpectColumnValuesToBeInSet(column="release_json_matches", value_set=true),
                    "release.json lists exactly the released images, key and settings",
                ),
            ],
        ),
        "expected_inputs": (
            expected,
            [
                (E.ExpectTableRowCountToBeBetween(min_value=1), "at least one accepted input"),
                (
                    E.ExpectColumnValuesToBeInSet(column="accounted_for", value_set=true),
                    "one protected image per accepted input (or a recorded reject)",
                ),
                (
                    E.ExpectColumnValuesToBeInSet(column="raw_input_found", value_set=true),
                    f"the original photo is where `fam align` read it ({AlignSummary.FILENAME}), so that "
                    "release files can be compared with it",
                ),
            ],
        ),
        "items": (
            items,
            [
                (E.ExpectColumnValuesToBeUnique(column="output"), "one file per item"),
                (E.ExpectColumnValuesToNotBeNull(column="pseudonym"), "pseudonym recorded"),
                (E.ExpectColumnValuesToBeInSet(column="from_accepted_input", value_set=true), "nothing else"),
                (E.ExpectColumnValuesToBeInSet(column="sha256_matches", value_set=true), "hash matches file"),
                (E.ExpectColumnValuesToBeInSet(column="under_release", value_set=true), "output in release/"),
            ],
        ),
        "release_files": (
            scan_df,
            [
                (
                    E.ExpectColumnValuesToBeInSet(column="allowed_type", value_set=true),
                    "only png/json (no latents)",
                ),
                (
                    E.ExpectColumnValuesToBeInSet(column="listed_or_release_json", value_set=true),
                    "no unlisted file",
                ),
                (E.ExpectColumnValuesToBeInSet(column="decodes", value_set=true), "every file decodes"),
                (
                    E.ExpectColumnValuesToBeInSet(column="is_original_copy", value_set=[False]),
                    "no original pixels",
                ),
                (E.ExpectColumnValuesToBeInSet(column="contains_key", value_set=[False]), "no key material"),
                (
                    E.ExpectColumnValuesToBeInSet(column="contains_real_name", value_set=[False]),
                    "no real names",
                ),
            ],
        ),
    }
    report = _run_suite("release", frames)
    report.results.append(
        {
            "frame": "release_files",
            "expectation": "key_scan",
            "column": "contains_key",
            "success": True,
            "why": "key material searched for"
            if key_hex
            else "key not at hand (research seed): not searched",
            "unexpected_count": 0,
            "examples": [],
        }
    )
    return report


def validate_metrics(metrics: str | Path | Metrics) -> ValidationReport:
    """Suite ``metrics`` over ``EVAL/metrics.json`` and its families (the folder, the file, or a
    :class:`~fam.artifacts.Metrics`): each value finite and within its family's range."""
    if not isinstance(metrics, Metrics):
        metrics = Metrics.read(metrics)
    values, families = metrics.values, metrics.families
    frame = pd.DataFrame(
        [
            {
                "name": k,
                "family": families.get(k, "none"),
                "is_number": isinstance(v, int | float) and not isinstance(v, bool),
                "finite": isinstance(v, int | float) and math.isfinite(v),
                "value": float(v) if isinstance(v, int | float) and math.isfinite(v) else np.nan,
            }
            for k, v in sorted(values.items())
        ],
        columns=["name", "family", "is_number", "finite", "value"],
    )
    E = _gx().expectations
    frames: dict[str, tuple[pd.DataFrame, list[tuple[Any, str]]]] = {
        "all": (
            frame,
            [
                (E.ExpectTableRowCountToBeBetween(min_value=1), "at least one metric"),
                (E.ExpectColumnValuesToBeUnique(column="name"), "unique names"),
                (E.ExpectColumnValuesToBeInSet(column="is_number", value_set=[True]), "numbers only"),
                (E.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]), "finite"),
                (
                    E.ExpectColumnValuesToBeInSet(column="family", value_set=list(FAMILY_RANGES)),
                    f"every metric has a family ({Metrics.FAMILIES_FILENAME}, written by `fam evaluate`)",
                ),
            ],
        ),
    }
    for family, (lo, hi) in FAMILY_RANGES.items():
        subset = frame[(frame["family"] == family) & frame["finite"]]
        bounds = {"min_value": lo} | ({"max_value": hi} if math.isfinite(hi) else {})
        why = f"{family} in [{lo:g}, {hi:g}]" if math.isfinite(hi) else f"{family} >= {lo:g}"
        frames[f"{family}s"] = (subset, [(E.ExpectColumnValuesToBeBetween(column="value", **bounds), why)])
    return _run_suite("metrics", frames)


# --------------------------------------------------------------------------------------------
# Great Expectations plumbing: one ephemeral context per suite run (milliseconds once GX is
# imported), so that a report's Data Docs show that run's validations only.


def _context() -> Any:
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # No temporary docs site: a report's Data Docs go where ValidationReport.write puts them.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _gx() -> Any:
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


_SUITE_COUNTER = iter(range(1 << 62))


# The column that names each row of a frame (a file or an input): failures quote it.
_ROW_IDS = ("file", "output", "input", "input_path", "person", "metric", "name")


def _run_suite(
    suite_name: str, frames: dict[str, tuple[pd.DataFrame, list[tuple[Any, str]]]]
) -> ValidationReport:
    gx = _gx()
    ctx = _context()
    uid = next(_SUITE_COUNTER)
    source = ctx.data_sources.add_pandas(f"fam-{suite_name}-{uid}")
    results: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    n_rows = 0
    for frame_name, (frame, expectations) in frames.items():
        row_id = next((c for c in _ROW_IDS if c in frame.columns), None)
        result_format: dict[str, Any] = {"result_format": "SUMMARY"}
        if row_id is not None:
            result_format["unexpected_index_column_names"] = [row_id]
        n_rows += len(frame)
        batch = source.add_dataframe_asset(frame_name).add_batch_definition_whole_dataframe("whole")
        suite = gx.ExpectationSuite(name=f"{suite_name}.{frame_name}.{uid}")
        whys = []
        for expectation, why in expectations:
            suite.add_expectation(expectation)
            whys.append(why)
        suite = ctx.suites.add(suite)
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"{suite_name}.{frame_name}.{uid}")
        )
        run = definition.run(
            batch_parameters={"dataframe": frame.reset_index(drop=True)}, result_format=result_format
        )
        native.append(run.to_json_dict())
        by_id = {e.id: w for e, w in zip(suite.expectations, whys, strict=True)}
        for r in run.results:
            cfg = r.expectation_config
            at_fault = r.result.get("partial_unexpected_index_list") or []
            examples = (
                [str(x[row_id]) for x in at_fault if isinstance(x, dict) and row_id in x]
                if row_id is not None
                else []
            ) or [str(x) for x in (r.result.get("partial_unexpected_list") or [])]
            results.append(
                {
                    "frame": frame_name,
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column"),
                    "success": bool(r.success),
                    "why": by_id.get(cfg.id, ""),
                    "unexpected_count": r.result.get("unexpected_count", 0),
                    "examples": examples[:5],
                }
            )
    return ValidationReport(suite_name, all(r["success"] for r in results), n_rows, results, native, ctx)


# --------------------------------------------------------------------------------------------
# Helpers.


def _align_input_root(aligned_dir: Path) -> Path | None:
    """The folder `fam align` read the photos from, or None when no summary records it."""
    if not (aligned_dir / AlignSummary.FILENAME).is_file():
        return None
    return Path(AlignSummary.read(aligned_dir).input_dir)


def _read_align_manifest(aligned_dir: Path) -> pd.DataFrame:
    rows = AlignManifest.read(aligned_dir).rows
    return pd.DataFrame([asdict(r) for r in rows], columns=list(AlignManifest.COLUMNS))


def _release_index_matches(out_dir: Path, manifest: ProtectManifest) -> bool:
    """``release.json`` exists, reads, and lists exactly the manifest's images with their hashes."""
    try:
        index = ReleaseIndex.read(out_dir)
    except InputError:
        return False
    prefix = f"{ReleaseIndex.FOLDER}/"
    made = {(it.output.removeprefix(prefix), it.output_sha256) for it in manifest.items}
    return (
        {(f.path, f.sha256) for f in index.files} == made
        and index.key_fingerprint == manifest.key.fingerprint
        and index.params_digest == manifest.params_digest
    )


def _pixel_hash(path: Path) -> str | None:
    """sha256 of the decoded RGB pixels (catches a copy re-encoded losslessly); None if it won't decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return sha256_bytes(f"{arr.shape}".encode() + arr.tobytes())


def _json_ok(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _contains_key(data: bytes, key_hex: str | None, key_bytes: bytes | None) -> bool:
    if not key_hex or key_bytes is None:
        return False
    lowered = data.lower()
    return key_hex.lower().encode() in lowered or key_bytes in data
