"""Run the nightly job in-process: the code path of `referral-pipeline run` and `backfill` (the schedule
launches the very same job through the Dagster daemon)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from referral_pipeline.console import Reporter, Silent
from referral_pipeline.entities import ENTITIES

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
DBT_LABEL = "dbt build (models and tests)"


class RunFailed(RuntimeError):
    """The nightly job failed; the message is one line a human can act on."""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    start: dt.date | None  # None: an unpartitioned job (data_audit)
    end: dt.date | None  # None: an unpartitioned job (data_audit)


def _instance() -> DagsterInstance:
    # With DAGSTER_HOME set, runs are recorded there (and show in the Dagster UI started with the same home).
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _root_message(err) -> str:
    """The innermost cause of a serialised Dagster error: the exception a human can act on."""
    while err is not None and getattr(err, "cause", None) is not None:
        err = err.cause
    lines = (err.message if err else "").strip().splitlines()
    return lines[-1] if lines else "unknown error"


_ENTITY_BY_ASSET = {e.asset_name: e.path for e in ENTITIES}


@dataclass
class _Listener:
    """Turns the run's events into progress lines, and collects every failed step."""

    report: Reporter
    dbt_keys: frozenset  # the dbt models the run builds
    dbt_checks: frozenset  # the dbt tests it runs
    ledger_views: frozenset  # rebuilt only when they changed: reported apart
    dbt_total: int
    dbt_done: int = 0
    seen: set = field(default_factory=set)  # a backfill materializes each asset once per day: report it once
    failures: list[tuple[str, str]] = field(default_factory=list)  # (step, message)

    def __call__(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            return
        if event.is_step_start and event.step_key == "dbt_models":
            self.report.line(f"  dbt build started: {self.dbt_total} models and tests")
        elif event.is_step_failure:
            message = _root_message(event.step_failure_data.error)
            self.failures.append((event.step_key, message))
            self.report.line(f"  FAILED {event.step_key}: {message}")
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            if event.asset_key not in self.seen:
                self.seen.add(event.asset_key)
                self._materialized(event)
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.asset_check_evaluation_data
            if check.asset_check_key in self.dbt_checks and check.asset_check_key not in self.seen:
                self.seen.add(check.asset_check_key)
                self._dbt_node()

    def _dbt_node(self) -> None:
        self.dbt_done += 1
        self.report.advance(DBT_LABEL, self.dbt_done, self.dbt_total)
        if self.dbt_done >= self.dbt_total:
            self.report.finish(DBT_LABEL)

    def _materialized(self, event) -> None:
        key = event.asset_key
        if key in self.dbt_keys:
            self._dbt_node()
            return
        meta = {
            k: getattr(v, "value", v)
            for k, v in event.step_materialization_data.materialization.metadata.items()
        }
        if key in self.ledger_views:
            if meta.get("rebuilt") is not False:
                self.report.line(
                    f"  ledger view {key.path[-1]} created (new, or changed since it was created)"
                )
            return
        name = key.path[-1]
        if name in _ENTITY_BY_ASSET:
            self.report.line(
                f"  loaded {_ENTITY_BY_ASSET[name]:<26} {meta.get('rows_loaded', 0):>9} rows, "
                f"{meta.get('rows_rejected', 0)} rejected"
            )
        elif "batches_recorded" in meta:
            recorded = meta["batches_recorded"] or []
            self.report.line(
                f"  payout ledger: {', '.join(recorded) + ' recorded' if recorded else 'no period due'}"
            )
        elif "batches_published" in meta:
            published = meta["batches_published"] or []
            self.report.line(f"  payout files: {', '.join(published) or 'nothing new'} published")
        elif key.path[0] == "rules" and name == "program":
            self.report.line(f"  rules loaded from {meta.get('rules_file')}")


def check_run_range(start: dt.date, end: dt.date) -> None:
    """A run covers complete UTC days, oldest first."""
    if end < start:
        raise RunFailed(f"the range ends ({end}) before it starts ({start})")
    today = dt.datetime.now(dt.UTC).date()
    if end >= today:
        raise RunFailed(
            f"{end} is not a complete day yet (UTC); the latest day that can run is {today - dt.timedelta(days=1)}"
        )


def run_nightly(
    start: dt.date,
    end: dt.date | None = None,
    *,
    log_level: str = "INFO",
    output_log: Path | None = None,
    report: Reporter | None = None,
    instance: DagsterInstance | None = None,
) -> RunSummary:
    """Run the nightly job for one day, or for a range of days as one backfill run.

    With `output_log`, what the run logs (dbt's log included) goes to that file instead of the terminal, and
    `report` shows concise progress. Raises RunFailed naming every step that failed."""
    end = end or start
    check_run_range(start, end)
    days = (end - start).days + 1
    return _execute(
        "nightly", start, end, f"{days} day{'s' if days > 1 else ''}", log_level, output_log, report, instance
    )


def run_audit(
    *,
    log_level: str = "INFO",
    output_log: Path | None = None,
    report: Reporter | None = None,
    instance: DagsterInstance | None = None,
) -> RunSummary:
    """Run the data_audit job (the full-history dbt data tests the nightly leaves out; not partitioned).
    Raises RunFailed naming the failing tests."""
    return _execute("data_audit", None, None, "data tests", log_level, output_log, report, instance)


def _execute(
    job_name: str,
    start: dt.date | None,
    end: dt.date | None,
    what: str,
    log_level: str,
    output_log: Path | None,
    report: Reporter | None,
    instance: DagsterInstance | None,
) -> RunSummary:
    from .assets.dbt import dbt_ledger_views, dbt_models
    from .definitions import defs

    job = defs.resolve_job_def(job_name)
    run_id = str(uuid.uuid4())
    kwargs: dict = {
        "run_config": {"loggers": {"console": {"config": {"log_level": log_level}}}},
        "run_id": run_id,
    }
    if start is None:
        pass  # an unpartitioned job
    elif start == end:
        kwargs["partition_key"] = start.isoformat()
    else:
        kwargs["tags"] = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    instance = instance or _instance()
    # Progress counts the dbt models and the dbt tests this job runs (the ledger views are rebuilt only when
    # they changed: reported apart).
    dbt_checks = (
        dbt_models.check_keys | dbt_ledger_views.check_keys
    ) & job.asset_layer.asset_graph.asset_check_keys
    dbt_models_run = dbt_models.keys & job.asset_layer.selected_asset_keys
    listener = _Listener(
        report or Silent(),
        dbt_keys=frozenset(dbt_models_run),
        dbt_checks=frozenset(dbt_checks),
        ledger_views=frozenset(dbt_ledger_views.keys),
        dbt_total=len(dbt_models_run) + len(dbt_checks),
    )
    instance.add_event_listener(run_id, listener)
    listener.report.line(f"  starting Dagster run {run_id[:8]} ({what}; instance: {_where(instance)})")
    if output_log is None:
        result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    else:
        output_log.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(output_log, "a", encoding="utf-8") as out,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
            _root_logging_to(out),
        ):
            result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    listener.report.close()
    if not result.success or result.dagster_run.status != DagsterRunStatus.SUCCESS:
        raise RunFailed(_failure_summary(listener.failures) or _first_failure(result))
    return RunSummary(run_id=result.run_id, start=start, end=end)


def _where(instance: DagsterInstance) -> str:
    return instance.root_directory if instance.is_persistent else "in memory"


def _failure_summary(failures: list[tuple[str, str]]) -> str:
    """Every failed step, named; steps that failed for the same reason share one clause."""
    by_message: dict[str, list[str]] = {}
    for step, message in failures:
        by_message.setdefault(message, []).append(step)
    return "; ".join(
        f"{'step' if len(steps) == 1 else 'steps'} {', '.join(steps)} failed: {message}"
        for message, steps in by_message.items()
    )


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_failure and event.message:
            return event.message.strip().splitlines()[0]
    return "the run failed; see the run's log"


@contextlib.contextmanager
def _root_logging_to(stream):
    """Send what libraries log through Python's logging to the run's log file while the run lasts."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
