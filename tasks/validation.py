"""Validation tasks: the Great Expectations suites of :mod:`tasks.gx_suites` as flow gates.

Each task writes its report (JSON) and raises :class:`tasks.gx_suites.ValidationFailed` when the
suite fails, which stops the flow before lineage is recorded or anything is published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks import gx_suites
from tasks.keyref import FlowKeyRef


def reports_dir_for(out_dir: str) -> Path:
    """Validation reports live beside the protect output (the output folder belongs to fam)."""
    out = Path(out_dir)
    return out.with_name(out.name + "-validation")


@task(name="validate-input")
def validate_input(aligned_dir: str, report_path: str) -> str:
    report = gx_suites.validate_input_manifest(aligned_dir)
    report.write(report_path)
    report.raise_for_failure()
    return report_path


@task(name="validate-release")
def validate_release(
    out_dir: str, aligned_dir: str, key: dict[str, Any], persons: list[str] | None, report_path: str
) -> str:
    """The release suite; the key is scanned for inside this task and never returned."""
    ref = FlowKeyRef.from_dict(key)
    report = gx_suites.validate_release(
        out_dir,
        aligned_dir,
        expected_fingerprint=ref.load().fingerprint,
        key_hex=ref.material_hex(),
        persons=persons,
    )
    report.write(report_path)
    report.raise_for_failure()
    return report_path


@task(name="validate-metrics")
def validate_metrics(eval_dir: str, report_path: str) -> str:
    report = gx_suites.validate_metrics(eval_dir)
    report.write(report_path)
    report.raise_for_failure()
    return report_path
