"""The nightly job (extract every landing partition of the day, load the rules, dbt build, publish payouts) and
the data_audit job (the full-history data tests the nightly leaves out)."""

from dagster import AssetSelection, define_asset_job

from .assets.dbt import audit_check_keys
from .partitions import daily_partitions

# dbt's data tests that do not guard what the payout step reads (orchestration.assets.dbt.blocks_publishing).
audit_checks = AssetSelection.checks(*audit_check_keys())

nightly_job = define_asset_job(
    name="nightly",
    # Everything daily; the monthly `payout_batch` asset has its own job (payout_batch_job).
    selection=AssetSelection.all() - AssetSelection.assets("payout_batch") - audit_checks,
    partitions_def=daily_partitions,
    description=(
        "Partition D: load dt=D of every source entity, load the program rules, build every dbt model and run "
        "the data tests that guard the payout step's inputs, then record and publish every payout period that "
        "ended before D (see docs/rules.md, Payout batches). The other data tests run in data_audit."
    ),
)

audit_job = define_asset_job(
    name="data_audit",
    selection=audit_checks,  # checks only: no partition (the tests read every row, whatever the day)
    description=(
        "The dbt data tests that the nightly leaves out: not_null, unique, accepted values and relationships "
        "over all history of every model the payout step does not read, and the tests of the ledger views. "
        "Reads the warehouse only; a failure names the test and its failing rows. Scheduled weekly "
        "(data_audit_schedule); `referral-pipeline audit` runs it now."
    ),
)
