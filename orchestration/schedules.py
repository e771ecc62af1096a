"""The nightly schedule: at 02:00 UTC on day D+1 it runs partition D (the day whose exports just completed)."""

from dagster import build_schedule_from_partitioned_job

from .jobs import nightly_job

nightly_schedule = build_schedule_from_partitioned_job(
    nightly_job,
    name="nightly_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    description="Runs the nightly job at 02:00 UTC for the previous day's partition.",
)
