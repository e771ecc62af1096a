"""The one daily partitions definition shared by every nightly asset.

Partition D is the landing partition `dt=D`; the nightly run for D also publishes the payout periods that
ended before D 00:00 UTC (see docs/rules.md, When a period is published). The schedule runs partition D at
02:00 UTC on D+1, once the day's exports are complete."""

import datetime as dt

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

PARTITIONS_START = "2020-01-01"

daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")

# A backfill over a range of days is one run: each raw asset loads every day of the range, then dbt builds
# once and payouts are published as of the range's last day. Publishing depends only on what is loaded by
# then, so a range ending on D gives the same batches as the nightly runs up to D.
single_run_backfill = BackfillPolicy.single_run()


def run_days(context: AssetExecutionContext) -> list[dt.date]:
    """The days (partitions) this run covers, oldest first."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


def run_date(context: AssetExecutionContext) -> dt.date:
    """The run's date: the partition, or the last day of a backfill range."""
    return dt.date.fromisoformat(context.partition_key_range.end)
