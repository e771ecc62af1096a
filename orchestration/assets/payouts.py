"""Payout batches: record the due monthly batches in the ledger, check them, then publish the files.

The finance logic lives in `payout_exports` (plain Python); these assets only drive it."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    Failure,
    MaterializeResult,
    MetadataValue,
    MonthlyPartitionsDefinition,
    asset,
    asset_check,
    define_asset_job,
)

import payout_exports
from payout_exports import periods
from payout_exports.publish import batch_results
from referral_pipeline import __version__

from ..partitions import daily_partitions, run_date, single_run_backfill
from ..resources import PipelineResource

# dbt asset keys are [schema, model].
UPSTREAM = [
    AssetKey(["marts", "fct_reward_events"]),
    AssetKey(["staging", "stg_crm__partners"]),
    AssetKey(["staging", "stg_finance__fx_rates"]),
]


@asset(
    name="payout_ledger",
    group_name="payouts",
    partitions_def=daily_partitions,
    deps=UPSTREAM,
    kinds={"python", "postgres"},
    description="Records, in one transaction each, every payout period due as of D 00:00 UTC (never recomputed).",
    pool="payouts",
    backfill_policy=single_run_backfill,
)
def payout_ledger(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    batches = payout_exports.record_due_batches(
        pipeline.url, run_date(context), code_version=__version__, log=context.log.info
    )
    return MaterializeResult(metadata={"batches_recorded": MetadataValue.json([b.batch_id for b in batches])})


@asset_check(
    asset=payout_ledger,
    blocking=True,
    description="Ledger totals equal the due lines of every recorded batch.",
)
def payout_ledger_reconciles(pipeline: PipelineResource) -> AssetCheckResult:
    problems = payout_exports.reconcile_ledger(pipeline.url)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"problems": MetadataValue.json(problems)},
        description="; ".join(problems) if problems else "every recorded batch reconciles",
    )


@asset(
    name="payout_files",
    group_name="payouts",
    partitions_def=daily_partitions,
    deps=[payout_ledger],
    kinds={"python", "s3"},
    description="Renders every recorded, unpublished batch and publishes it (data files first, manifest last).",
    pool="payouts",
    backfill_policy=single_run_backfill,
)
def payout_files(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    published = payout_exports.publish_recorded_batches(
        pipeline.url, pipeline.settings.export_uri, log=context.log.info
    )
    for batch in batch_results(pipeline.url, published):  # each published month: a `payout_batch` partition
        context.log_event(
            AssetMaterialization(
                asset_key=payout_batch.key,
                partition=partition_key_of(batch.period),
                metadata={
                    "batch_id": batch.batch_id,
                    "period": batch.period,
                    "partner_count": batch.partner_count,
                    "line_count": batch.line_count,
                    "program_amount": MetadataValue.text(str(batch.program_amount)),
                },
            )
        )
    return MaterializeResult(metadata={"batches_published": MetadataValue.json(published)})


monthly_partitions = MonthlyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")


def partition_key_of(period: str) -> str:
    """The `payout_batch` partition key of a payout period: `2025-01` -> `2025-01-01`."""
    return periods.period_start(period).strftime(monthly_partitions.fmt)


def period_of_partition(context: AssetExecutionContext) -> str:
    """The payout period (YYYY-MM) of the run's `payout_batch` partition: the month its time window starts."""
    return periods.period_of(context.partition_time_window.start)


@asset(
    name="payout_batch",
    group_name="payouts",
    partitions_def=monthly_partitions,
    kinds={"python", "s3"},
    description=(
        "One payout period (YYYY-MM): the nightly job publishes it once the month is due; materializing a month "
        "by hand finishes a batch whose publishing crashed (byte-identical files) and verifies what is published. "
        "It never records or recomputes a batch."
    ),
    pool="payouts",
)
def payout_batch(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    period = period_of_partition(context)
    batch_id = periods.batch_id(period)
    url, export_uri = pipeline.url, pipeline.settings.export_uri
    written = payout_exports.publish_batch(url, export_uri, batch_id, log=context.log.info)
    problems = payout_exports.reconcile_batch(url, export_uri, batch_id)
    if problems:
        raise Failure(description=f"{batch_id} does not reconcile: " + "; ".join(problems))
    return MaterializeResult(metadata={"batch_id": batch_id, "period": period, "files_written": written})


@asset_check(
    asset=payout_files, blocking=True, description="Published files match the ledger and their manifests."
)
def payout_files_reconcile(pipeline: PipelineResource) -> AssetCheckResult:
    problems = payout_exports.verify_published(pipeline.url, pipeline.settings.export_uri)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"problems": MetadataValue.json(problems)},
        description="; ".join(problems) if problems else "every published batch matches the ledger",
    )


payout_batch_job = define_asset_job(
    "payout_batch_job",
    selection=[payout_batch],
    partitions_def=monthly_partitions,
    description="Finish or verify the published payout batch of one month (never recomputes it).",
)

assets = [payout_ledger, payout_files, payout_batch]
checks = [payout_ledger_reconciles, payout_files_reconcile]
