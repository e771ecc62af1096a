"""The nightly job: extract every landing partition of the day, load the rules, dbt build, publish payouts."""

from dagster import AssetSelection, define_asset_job

from .partitions import daily_partitions

nightly_job = define_asset_job(
    name="nightly",
    # Everything daily; the monthly `payout_batch` asset has its own job (payout_batch_job).
    selection=AssetSelection.all() - AssetSelection.assets("payout_batch"),
    partitions_def=daily_partitions,
    description=(
        "Partition D: load dt=D of every source entity, load the program rules, build and test every dbt "
        "model, then record and publish every payout period that ended before D (see docs/rules.md, Payout "
        "batches)."
    ),
)
