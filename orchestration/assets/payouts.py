"""Payout batches: record the due monthly batches in the ledger, check them, then publish the files.

The finance logic lives in `payout_exports` (plain Python); these assets only drive it."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    MonthlyPartitionsDefinition,
    asset,
    asset_check,
    define_asset_job,
    multi_asset,
)

import payout_exports
from payout_exports import periods
from payout_exports.publish import batch_results
from referral_pipeline import __version__

from ..partitions import daily_partitions, run_date, single_run_backfill
from ..resources import PipelineResource

# dbt asset keys are [schema, model].
UPSTREAM = [
    AssetKey(["marts", "fct_reward_entitlements"]),
    AssetKey(["staging", "stg_crm__partners"]),
    AssetKey(["staging", "stg_finance__fx_rates"]),
]


# What the payout step writes, declared as its assets: the dbt sources `payouts.*` have these keys, so the views
# over the ledger (marts.fct_reward_events, marts.fct_payout_ledger) come after the payout step in the graph.
LEDGER_TABLES = [
    AssetKey(["payouts", t]) for t in ("ledger_lines", "review_lines", "deferred_partners", "partner_payouts")
]
BATCHES_TABLE = AssetKey(
    ["payouts", "batches"]
)  # recorded by payout_ledger, marked published by payout_files


def _table_spec(key: AssetKey, writer: str) -> AssetSpec:
    return AssetSpec(
        key,
        group_name="payouts",
        kinds={"postgres"},
        partitions_def=daily_partitions,
        description=f"Append-only ledger table {'.'.join(key.path)}, written by the payout step ({writer}).",
        skippable=True,
    )


@multi_asset(
    name="payout_ledger",
    specs=[
        AssetSpec(
            "payout_ledger",
            deps=UPSTREAM,
            group_name="payouts",
            kinds={"python", "postgres"},
            partitions_def=daily_partitions,
            description="Records, in one transaction each, every payout period due as of D 00:00 UTC (never "
            "recomputed), from marts.fct_reward_entitlements.",
        ),
        *[_table_spec(k, "payout_ledger") for k in LEDGER_TABLES],
    ],
    pool="payouts",
    backfill_policy=single_run_backfill,
)
def payout_ledger(context: AssetExecutionContext, pipeline: PipelineResource):
    batches = payout_exports.record_due_batches(
        pipeline.url, run_date(context), code_version=__version__, log=context.log.info
    )
    recorded = MetadataValue.json([b.batch_id for b in batches])
    yield MaterializeResult(asset_key="payout_ledger", metadata={"batches_recorded": recorded})
    for key in LEDGER_TABLES:
        yield MaterializeResult(asset_key=key, metadata={"written_by": "payout_ledger"})


@asset_check(
    asset=AssetKey("payout_ledger"),
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


@multi_asset(
    name="payout_files",
    specs=[
        AssetSpec(
            "payout_files",
            deps=["payout_ledger"],
            group_name="payouts",
            kinds={"python", "s3"},
            partitions_def=daily_partitions,
            description="Renders every recorded, unpublished batch and publishes it (data files first, manifest "
            "last); under `batch_approval: required` only once finance has approved it (referral-pipeline batch "
            "approve).",
        ),
        _table_spec(BATCHES_TABLE, "payout_files"),
    ],
    pool="payouts",
    backfill_policy=single_run_backfill,
)
def payout_files(context: AssetExecutionContext, pipeline: PipelineResource):
    # Batches recorded without sign-off, and approved ones (batch_approval: required); one awaiting approval waits.
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
    yield MaterializeResult(
        asset_key="payout_files", metadata={"batches_published": MetadataValue.json(published)}
    )
    yield MaterializeResult(asset_key=BATCHES_TABLE, metadata={"written_by": "payout_files"})


monthly_partitions = MonthlyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")


def partition_key_of(period: str) -> str:
    """The `payout_batch` partition key of a payout period: `2025-01` -> `2025-01-01`."""
    return periods.period_start(period).strftime(monthly_partitions.fmt)


def period_of_partition(context: AssetExecutionContext) -> str:
    """The payout period (YYYY-MM) of the run's `payout_batch` partition: the month its time window starts."""
    return periods.period_of(context.partition_time_window.start)


def live_batch_id(url: str, period: str) -> str:
    """The batch id of a period: its live batch (batch-YYYY-MM, or batch-YYYY-MM-rN when an earlier one was
    rejected), else batch-YYYY-MM (which publish_batch then reports as not recorded)."""
    import psycopg

    from payout_exports.ledger import current_batch

    with psycopg.connect(url) as conn:
        batch = current_batch(conn, period)
    return batch.batch_id if batch is not None else periods.batch_id(period)


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
    url, export_uri = pipeline.url, pipeline.settings.export_uri
    batch_id = live_batch_id(url, period)
    try:
        written = payout_exports.publish_batch(url, export_uri, batch_id, log=context.log.info)
    except payout_exports.PayoutError as exc:  # e.g. awaiting approval (batch_approval: required)
        raise Failure(description=str(exc)) from None
    problems = payout_exports.reconcile_batch(url, export_uri, batch_id)
    if problems:
        raise Failure(description=f"{batch_id} does not reconcile: " + "; ".join(problems))
    return MaterializeResult(metadata={"batch_id": batch_id, "period": period, "files_written": written})


@asset_check(
    asset=AssetKey("payout_files"),
    blocking=True,
    description="Published files match the ledger and their manifests.",
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
