"""The nightly schedule: at 02:00 UTC on day D+1 it runs partition D (the day whose exports just completed).

It is stopped by default: a new deployment runs nothing on its own until someone turns the schedule on (the
toggle on the schedule's page in the Dagster UI, or `dagster schedule start nightly_schedule -w workspace.yaml`
with DAGSTER_HOME set to the instance the daemon uses), and it needs the Dagster daemon running (`dagster dev`
starts one). The on/off state is kept in that instance, so it survives restarts."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_from_partitioned_job

from .jobs import audit_job, nightly_job

nightly_schedule = build_schedule_from_partitioned_job(
    nightly_job,
    name="nightly_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "Runs the nightly job at 02:00 UTC for the previous day's partition. Stopped by default: turn it on "
        "with the toggle on this page or `dagster schedule start nightly_schedule -w workspace.yaml` "
        "(the Dagster daemon must be running, as under `dagster dev`)."
    ),
)


data_audit_schedule = ScheduleDefinition(
    name="data_audit_schedule",
    job=audit_job,
    cron_schedule="0 5 * * 0",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "Runs the data_audit job (the full-history data tests the nightly leaves out) on Sundays at 05:00 UTC, "
        "after that night's nightly. Stopped by default, like nightly_schedule."
    ),
)
