"""What the Dagster UI shows after the nightly runs of the golden example, asked of a real Dagster instance: the
monthly `payout_batch` asset has exactly the published months materialized (as keys of its partitions
definition), and every raw landing asset reported its checks."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance

from referral_pipeline.entities import ENTITIES

from golden import read_csv, scoped_env

PAYOUT_BATCH = AssetKey("payout_batch")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def nightly(golden_nightly):
    """The golden example's two backfill runs of the nightly job (the session's), recorded in one Dagster
    instance."""
    from orchestration.definitions import defs

    with scoped_env(golden_nightly["env"]):
        yield {**golden_nightly, "defs": defs}


def run_events(instance: DagsterInstance, run_id: str, event_type: DagsterEventType) -> list:
    return [
        r.event_log_entry.dagster_event
        for r in instance.get_records_for_run(run_id, of_type=event_type).records
    ]


def materialized_partitions(instance: DagsterInstance, key: AssetKey) -> list[str]:
    records = instance.fetch_materializations(key, limit=1000, ascending=True).records
    return [r.partition_key for r in records]


def expected_keys(golden) -> list[str]:
    """The `payout_batch` partition key of each month the golden example publishes."""
    return [f"{row['period']}-01" for row in read_csv(golden / "expected_batches.csv")]


def test_published_months_are_materialized_partitions_of_payout_batch(nightly):
    instance, golden = nightly["instance"], nightly["golden"]
    assert expected_keys(golden) == ["2025-01-01", "2025-02-01"]
    assert materialized_partitions(instance, PAYOUT_BATCH) == expected_keys(golden)
    assert instance.get_materialized_partitions(PAYOUT_BATCH) == set(expected_keys(golden))

    # ... and they are keys of the asset's partitions definition, so the UI counts them as materialized
    partitions_def = nightly["defs"].resolve_assets_def(PAYOUT_BATCH).partitions_def
    valid = set(partitions_def.get_partition_keys(current_time=dt.datetime(2025, 3, 2, tzinfo=dt.UTC)))
    assert set(expected_keys(golden)) <= valid

    # the run that published a month materialized it, with the batch id and period in the metadata
    for run_id, period in zip(nightly["run_ids"], ["2025-01", "2025-02"], strict=True):
        materializations = run_events(instance, run_id, DagsterEventType.ASSET_MATERIALIZATION)
        [event] = [e for e in materializations if e.asset_key == PAYOUT_BATCH]
        materialization = event.step_materialization_data.materialization
        assert materialization.partition == f"{period}-01"
        assert materialization.metadata["batch_id"].value == f"batch-{period}"
        assert materialization.metadata["period"].value == period


def test_materializing_a_month_by_hand_keeps_the_same_partition(nightly):
    defs, instance = nightly["defs"], nightly["instance"]
    result = defs.resolve_job_def("payout_batch_job").execute_in_process(
        instance=instance, partition_key="2025-02-01", run_config=QUIET
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("payout_batch")
    assert materialization.partition == "2025-02-01"
    assert materialization.metadata["batch_id"].value == "batch-2025-02"
    assert materialization.metadata["files_written"].value == 0
    assert instance.get_materialized_partitions(PAYOUT_BATCH) == {"2025-01-01", "2025-02-01"}


def test_every_raw_asset_reported_its_checks_in_each_run(nightly):
    expected = {
        AssetCheckKey(AssetKey(e.asset_name), name)
        for e in ENTITIES
        for name in ("rows_loaded", "rejected_share")
    }
    for run_id in nightly["run_ids"]:
        evaluations = run_events(nightly["instance"], run_id, DagsterEventType.ASSET_CHECK_EVALUATION)
        got = {e.asset_check_evaluation_data.asset_check_key for e in evaluations}
        assert expected <= got
