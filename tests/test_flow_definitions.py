"""What the Prefect UI shows of the flows: described parameters, artifacts (no flow runs here)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_every_flow_parameter_is_described_for_the_ui():
    from prefect.utilities.callables import parameter_schema

    from flows.evaluate import evaluate_release
    from flows.protect import protect_dataset
    from flows.revoke import revoke_key
    from flows.train import train_prior

    for flow_ in (protect_dataset, evaluate_release, revoke_key, train_prior):
        schema = parameter_schema(flow_.fn)
        missing = [name for name, p in schema.properties.items() if not p.get("description")]
        assert missing == [], (flow_.name, missing)


def test_prefect_artifacts_show_headline_metrics_and_link_only_to_servers():
    from tasks.prefect_artifacts import key_metrics, run_url

    rows = key_metrics({"psr_anonymity_dlib_fmr1e-3": 0.9, "psr_anonymity_dlib_fmr1e-5": 0.99, "fid": 12.0})
    assert rows == [{"metric": "fid", "value": 12.0}, {"metric": "psr_anonymity_dlib_fmr1e-3", "value": 0.9}]
    assert run_url("sqlite:///runs/mlflow.db", "1", "abc") is None
    assert run_url("http://mlflow:5000/", "1", "abc") == "http://mlflow:5000/#/experiments/1/runs/abc"
