"""The Dagster definitions load the way `dagster dev -w workspace.yaml` loads them, with every asset, check,
job and schedule wired as the spec requires."""

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from referral_pipeline.entities import ENTITIES

ROOT = Path(__file__).resolve().parents[1]


def test_workspace_loads_with_the_dagster_cli():
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nightly_job_covers_every_source_entity_dbt_and_payouts():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for e in ENTITIES:
        assert e.asset_name in keys
    assert {"rules/versions", "staging/stg_crm__deals", "payout_ledger", "payout_files"} <= keys

    job = defs.resolve_job_def("nightly")
    job_keys = {k.to_user_string() for k in job.asset_layer.asset_graph.get_all_asset_keys()}
    assert {e.asset_name for e in ENTITIES} | {
        "rules/versions",
        "staging/stg_crm__deals",
        "payout_files",
    } <= job_keys
    assert job.partitions_def is not None and job.partitions_def.get_first_partition_key() == "2020-01-01"


def test_raw_tables_are_the_dbt_sources_upstreams():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    for e in ENTITIES:
        staging = AssetKey(["staging", f"stg_{e.source}__{e.name}"])
        assert AssetKey(e.asset_name) in graph.get(staging).parent_keys, staging


def test_schedule_runs_the_nightly_job_at_two_utc():
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly"
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone in (None, "UTC")


def test_payout_publishing_is_blocked_by_reconciliation_checks():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    checks = {k.name: k for k in graph.asset_check_keys}
    assert "payout_ledger_reconciles" in checks
    assert AssetKey("payout_ledger") in graph.get(AssetKey("payout_files")).parent_keys
    assert AssetKey(["marts", "fct_reward_entitlements"]) in graph.get(AssetKey("payout_ledger")).parent_keys


def test_the_ledger_views_come_after_the_payout_step_that_writes_the_ledger():
    """The payout step reads the entitlements and writes the ledger tables (its assets); the views over the
    ledger read those tables, so they come after it: no hidden cycle through the warehouse."""
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    events = graph.get(AssetKey(["marts", "fct_reward_events"]))
    assert AssetKey(["marts", "fct_reward_entitlements"]) in events.parent_keys
    assert {
        AssetKey(["payouts", t]) for t in ("batches", "ledger_lines", "review_lines")
    } <= events.parent_keys
    writers = {
        t: {k.to_user_string() for k in graph.get(AssetKey(["payouts", t])).parent_keys}
        for t in ("batches", "ledger_lines", "review_lines", "deferred_partners", "partner_payouts")
    }
    assert not graph.get(AssetKey(["payouts", "batches"])).is_external, writers
    ledger_tables = set(graph.get(AssetKey("payout_ledger")).execution_set_asset_keys)
    assert {AssetKey(["payouts", t]) for t in ("ledger_lines", "review_lines")} <= ledger_tables
    assert AssetKey(["payouts", "batches"]) in graph.get(AssetKey("payout_files")).execution_set_asset_keys
    upstream_of_ledger = graph.upstream_key_iterator(AssetKey("payout_ledger"))
    assert AssetKey(["marts", "fct_reward_events"]) not in set(upstream_of_ledger)


def test_the_monthly_payout_batch_has_its_own_job():
    import datetime as dt

    from orchestration.definitions import defs

    nightly = defs.resolve_job_def("nightly")
    assert AssetKey("payout_files") in nightly.asset_layer.selected_asset_keys
    assert AssetKey("payout_batch") not in nightly.asset_layer.selected_asset_keys
    monthly = defs.resolve_job_def("payout_batch_job")
    assert monthly.asset_layer.selected_asset_keys == {AssetKey("payout_batch")}
    assert "2025-01-01" in monthly.partitions_def.get_partition_keys(current_time=dt.datetime(2025, 3, 1))


def test_the_nightly_runs_the_tests_that_guard_the_payout_inputs_and_the_audit_job_runs_the_rest():
    """Every dbt data test runs in exactly one of the two jobs: the tests of the models the payout step reads
    (and the singular cross-model tests before it) in the nightly, where a failure stops publishing; the other
    full-history tests in data_audit."""
    from orchestration.assets.dbt import dbt_ledger_views, dbt_models
    from orchestration.definitions import defs

    nightly = defs.resolve_job_def("nightly").asset_layer.asset_graph.asset_check_keys
    audit = defs.resolve_job_def("data_audit").asset_layer.asset_graph.asset_check_keys
    dbt_checks = dbt_models.check_keys | dbt_ledger_views.check_keys
    assert dbt_checks <= nightly | audit
    assert not (nightly & audit & dbt_checks)
    in_nightly = {(k.asset_key.path[-1], k.name) for k in nightly & dbt_checks}
    # the payout step's inputs (payout_exports.ledger.Inputs), by name here so that a change there shows
    for model in ("fct_reward_entitlements", "stg_crm__partners", "stg_finance__fx_rates"):
        assert any(m == model for m, _ in in_nightly), model
    assert ("fct_reward_entitlements", "unique_fct_reward_entitlements_event_id") in in_nightly
    assert ("fct_attribution", "attribution_credits_sum_to_one") in in_nightly
    assert ("int_deals__enriched", "attribution_deals_have_fx_rates") in in_nightly
    # full-history invariants of other models, and the tests of the views over the ledger, are audited
    audited = {(k.asset_key.path[-1], k.name) for k in audit}
    assert ("int_touchpoints__touchpoints", "unique_int_touchpoints__touchpoints_touch_id") in audited
    assert any(m == "fct_payout_ledger" for m, _ in audited)
    assert {m for m, _ in in_nightly} <= {
        "fct_reward_entitlements",
        "stg_crm__partners",
        "stg_finance__fx_rates",
        "fct_attribution",
        "int_deals__enriched",
    }


def test_the_audit_schedule_runs_the_audit_job_weekly():
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("data_audit_schedule")
    assert schedule.job_name == "data_audit"
    assert schedule.cron_schedule == "0 5 * * 0"
