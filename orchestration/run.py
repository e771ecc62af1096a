"""Run the nightly job in-process: the code path of `referral-pipeline run` and `backfill` (the schedule
launches the very same job through the Dagster daemon)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    """The nightly job failed; the message is one line a human can act on."""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    start: dt.date
    end: dt.date


def _instance() -> DagsterInstance:
    # With DAGSTER_HOME set, runs are recorded there (and show in `dagster dev` started with the same home).
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _root_message(err) -> str:
    """The innermost cause of a serialised Dagster error: the exception a human can act on."""
    while err is not None and getattr(err, "cause", None) is not None:
        err = err.cause
    lines = (err.message if err else "").strip().splitlines()
    return lines[-1] if lines else "unknown error"


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return f"step {event.step_key} failed: {_root_message(event.step_failure_data.error)}"
    for event in result.all_events:
        if event.is_failure and event.message:
            return event.message.strip().splitlines()[0]
    return "the run failed; see the log above"


def run_nightly(
    start: dt.date, end: dt.date | None = None, *, log_level: str = "INFO", output_log: Path | None = None
) -> RunSummary:
    """Run the nightly job for one day, or for a range of days as one backfill run.

    With `output_log`, what the run prints (dbt's log included) goes to that file instead of the terminal."""
    from .definitions import defs

    end = end or start
    if end < start:
        raise RunFailed(f"the range ends ({end}) before it starts ({start})")
    today = dt.datetime.now(dt.UTC).date()
    if end >= today:
        raise RunFailed(
            f"{end} is not a complete day yet (UTC); the latest day that can run is {today - dt.timedelta(days=1)}"
        )
    job = defs.resolve_job_def("nightly")
    kwargs: dict = {"run_config": {"loggers": {"console": {"config": {"log_level": log_level}}}}}
    if start == end:
        kwargs["partition_key"] = start.isoformat()
    else:
        kwargs["tags"] = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    if output_log is None:
        result = job.execute_in_process(instance=_instance(), raise_on_error=False, **kwargs)
    else:
        output_log.parent.mkdir(parents=True, exist_ok=True)
        with open(output_log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out):
            result = job.execute_in_process(instance=_instance(), raise_on_error=False, **kwargs)
    if not result.success or result.dagster_run.status != DagsterRunStatus.SUCCESS:
        raise RunFailed(_first_failure(result))
    return RunSummary(run_id=result.run_id, start=start, end=end)
