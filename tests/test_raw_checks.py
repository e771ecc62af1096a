"""Every raw landing asset carries the `rows_loaded` and `rejected_share` asset checks; loading a partition
reports them (warnings only) from what the load did, over the golden landing zone."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, DagsterInstance, materialize

from orchestration.assets.raw import REJECTED_SHARE_CHECK, ROWS_LOADED_CHECK, raw_asset
from orchestration.resources import PipelineResource
from orchestration.run import RANGE_END_TAG, RANGE_START_TAG
from referral_pipeline.entities import ENTITIES

CHECKS = (ROWS_LOADED_CHECK, REJECTED_SHARE_CHECK)


def entity(path: str):
    [e] = [e for e in ENTITIES if e.path == path]
    return e


def test_every_raw_asset_has_both_checks_in_the_definitions_and_the_nightly_job():
    from orchestration.definitions import defs

    expected = {AssetCheckKey(AssetKey(e.asset_name), name) for e in ENTITIES for name in CHECKS}
    assert expected <= set(defs.resolve_asset_graph().asset_check_keys)
    nightly = defs.resolve_job_def("nightly")
    assert expected <= set(nightly.asset_layer.asset_graph.asset_check_keys)
    for key in expected:  # warnings only: a check never stops the run
        spec = defs.resolve_assets_def(key.asset_key).get_spec_for_check_key(key)
        assert not spec.blocking and spec.description


def run(golden_dir: Path, url: str, tmp_path: Path, path: str, *, day: str | None = None, days=None):
    """Materialize one raw asset for a day (or a range of days, as one backfill run); its check evaluations by
    name."""
    asset = raw_asset(entity(path))
    pipeline = PipelineResource(
        warehouse_url=url,
        landing_uri=str(golden_dir / "landing"),
        export_uri=str(tmp_path / "exports"),
        rules_file=str(golden_dir / "program_rules.yml"),
    )
    kwargs = {"partition_key": day} if day else {"tags": {RANGE_START_TAG: days[0], RANGE_END_TAG: days[1]}}
    result = materialize(
        [asset], resources={"pipeline": pipeline}, instance=DagsterInstance.ephemeral(), **kwargs
    )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(CHECKS)
    assert {e.asset_key for e in evaluations.values()} == {AssetKey(entity(path).asset_name)}
    assert {e.severity for e in evaluations.values()} == {AssetCheckSeverity.WARN}
    return evaluations


def test_a_clean_partition_passes_both_checks(golden_dir, warehouse_url, tmp_path):
    ev = run(golden_dir, warehouse_url, tmp_path, "links/clicks", day="2025-01-06")
    assert ev[ROWS_LOADED_CHECK].passed
    assert ev[ROWS_LOADED_CHECK].metadata["rows_loaded"].value > 0
    assert ev[REJECTED_SHARE_CHECK].passed
    assert ev[REJECTED_SHARE_CHECK].metadata["rows_rejected"].value == 0


def test_a_partition_with_too_many_rejects_warns(golden_dir, warehouse_url, tmp_path):
    # links/clicks dt=2025-01-07: 20 rows loaded, 2 rejected (9.1% > 5%)
    ev = run(golden_dir, warehouse_url, tmp_path, "links/clicks", day="2025-01-07")
    assert ev[ROWS_LOADED_CHECK].passed
    share = ev[REJECTED_SHARE_CHECK]
    assert not share.passed
    assert share.metadata["rows_rejected"].value == 2
    assert share.metadata["rejected_share"].value == pytest.approx(2 / 22, abs=1e-6)
    assert share.metadata["partitions_over_threshold"].value == {
        "2025-01-07": pytest.approx(2 / 22, abs=1e-6)
    }
    assert "dt=2025-01-07" in share.description


def test_a_partition_of_only_rejects_fails_both_checks(golden_dir, warehouse_url, tmp_path):
    # crm/deal_reversals dt=2025-01-07: both rows rejected
    ev = run(golden_dir, warehouse_url, tmp_path, "crm/deal_reversals", day="2025-01-07")
    assert not ev[ROWS_LOADED_CHECK].passed
    assert ev[ROWS_LOADED_CHECK].metadata["empty_partitions"].value == ["2025-01-07"]
    assert not ev[REJECTED_SHARE_CHECK].passed
    assert ev[REJECTED_SHARE_CHECK].metadata["max_partition_share"].value == 1.0


def test_a_missing_partition_warns_that_it_loaded_nothing(golden_dir, warehouse_url, tmp_path):
    # crm/deal_reversals has no dt=2025-01-08 folder: legitimate, zero rows, a warning
    ev = run(golden_dir, warehouse_url, tmp_path, "crm/deal_reversals", day="2025-01-08")
    assert not ev[ROWS_LOADED_CHECK].passed
    assert "dt=2025-01-08" in ev[ROWS_LOADED_CHECK].description
    assert ev[REJECTED_SHARE_CHECK].passed


def test_a_backfill_run_names_the_partitions_that_warn(golden_dir, warehouse_url, tmp_path):
    ev = run(golden_dir, warehouse_url, tmp_path, "links/clicks", days=("2025-01-05", "2025-01-07"))
    assert ev[ROWS_LOADED_CHECK].passed
    assert ev[ROWS_LOADED_CHECK].metadata["partitions"].value == 3
    share = ev[REJECTED_SHARE_CHECK]
    assert not share.passed
    assert list(share.metadata["partitions_over_threshold"].value) == ["2025-01-07"]
