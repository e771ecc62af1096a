"""Payout batches (SPEC section 9): record due batches in the ledger, check them, then publish the files.

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
    for batch_id in published:  # each published month shows as a partition of `payout_batch`
        context.log_event(
            AssetMaterialization(
                asset_key=payout_batch.key,
                partition=batch_id.removeprefix("batch-"),
                metadata={"batch_id": batch_id},
            )
        )
    return MaterializeResult(metadata={"batches_published": MetadataValue.json(published)})


monthly_partitions = MonthlyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")


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
    period = context.partition_key[:7]
    batch_id = f"batch-{period}"
    url, export_uri = pipeline.url, pipeline.settings.export_uri
    written = payout_exports.publish_batch(url, export_uri, batch_id, log=context.log.info)
    problems = payout_exports.reconcile_batch(url, export_uri, batch_id)
    if problems:
        raise Failure(description=f"{batch_id} does not reconcile: " + "; ".join(problems))
    return MaterializeResult(metadata={"batch_id": batch_id, "files_written": written})


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
