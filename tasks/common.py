"""What every task module shares: settings parsed inside the task, and the retry policy.

Settings travel between tasks as ``(params_path, overrides)`` and are parsed inside each task by
:func:`fam.config.load_params`, so a Prefect parameter, cache key or persisted result never holds
more than a path and a few overrides.
"""

from __future__ import annotations

from typing import Any

from fam.config import Params, load_params
from fam.errors import UserError


def settings(params_path: str, overrides: dict[str, Any] | None) -> Params:
    return load_params(params_path, overrides or {})


def _retry_if_transient(task_: Any, task_run: Any, state: Any) -> bool:
    # A UserError (bad setting, missing weights, bad key) cannot be fixed by trying again.
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, UserError)


def with_retries(t: Any, params: Params) -> Any:
    """The task with the retry policy of ``params.mlops`` (transient failures only)."""
    return t.with_options(
        retries=params.mlops.retries,
        retry_delay_seconds=params.mlops.retry_delay_s,
        retry_condition_fn=_retry_if_transient,
    )
