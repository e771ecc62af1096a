"""Nightly runs through the real Dagster job: day-by-day runs, a backfill and a full refresh give the same raw
tables, marts and ledger, late data included (tests/late_data.py), a rerun changes nothing, and a failing
partition fails the run with a one-line reason and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import late_data as late
import psycopg
import pytest

from golden import dbt_build, pipeline_env

SKIP_COLUMNS = {
    "_loaded_at",
    "_load_batch_id",
    "loaded_at",
    "load_batch_id",
    "created_at",
    "started_at",
    "finished_at",
    "published_at",
}


def snapshot(url: str, schemas=("raw", "marts", "payouts")) -> dict[str, list[tuple]]:
    """Every table and view of the schemas (marts that are views, such as fct_touchpoints, included), all rows
    sorted, without load-time columns."""
    out: dict[str, list[tuple]] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type in ('BASE TABLE', 'VIEW') order by 1, 2",
            (list(schemas),),
        ).fetchall()
        for schema, table in tables:
            cols = [
                c
                for (c,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
                    "order by ordinal_position",
                    (schema, table),
                ).fetchall()
                if c not in SKIP_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            rows = conn.execute(f'select {select} from {schema}."{table}"').fetchall()
            out[f"{schema}.{table}"] = sorted(rows, key=repr)
    return out


def view_oids(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "select c.relname, c.oid::int from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'marts' and c.relname in ('fct_reward_events', 'fct_payout_ledger')"
            ).fetchall()
        )


def assert_audit_catches_what_the_nightly_leaves_out(url: str) -> None:
    """The data_audit job passes on sound data and names the failing test once a full-history invariant that
    the nightly does not run is broken."""
    from orchestration.run import RunFailed, run_audit

    run_audit(log_level="WARNING")
    with psycopg.connect(url) as conn:
        conn.execute(
            "update intermediate.int_touchpoints__touchpoints set touch_id = null "
            "where touch_id = (select min(touch_id) from intermediate.int_touchpoints__touchpoints)"
        )
    with pytest.raises(RunFailed, match="not_null_int_touchpoints__touchpoints_touch_id"):
        run_audit(log_level="WARNING")


def run_days(first: dt.date, last: dt.date) -> None:
    """One nightly run per day, oldest first."""
    from orchestration.run import run_nightly

    for i in range((last - first).days + 1):
        run_nightly(first + dt.timedelta(days=i), log_level="WARNING")


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def assert_old_clicks_gain_an_account_and_credit(url: str, before: dict, after: dict) -> None:
    """Late conversion: the visitor's clicks, loaded days before, get its account key and join the deal's path."""
    clicks = query(
        url,
        "select click_id, _partition_date from raw.links__clicks where click_id = any(%s)",
        list(late.VISITOR_CLICKS),
    )
    assert len(clicks) == len(late.VISITOR_CLICKS) and all(d < late.LATE_CONVERSION_DAY for _, d in clicks)
    assert before["touches"] == [(f"clk:{c}", None) for c in sorted(late.VISITOR_CLICKS)], before["touches"]
    assert after["touches"] == [(f"clk:{c}", late.CONVERTED_ACCOUNT) for c in sorted(late.VISITOR_CLICKS)]
    assert late.CLICK_PARTNER not in dict(before["deal_credit"]), before["deal_credit"]
    assert dict(after["deal_credit"]).get(late.CLICK_PARTNER, 0) > 0, after["deal_credit"]


def assert_the_updated_deal_moved(before: dict, after: dict) -> None:
    """Record update: the re-delivered deal is won with its new amount; its attribution rows changed."""
    partner, amount = late.UPDATED_DEAL_PARTNER, Decimal(late.UPDATED_AMOUNT)
    assert before["deal"] == [(partner, False, 0)], before["deal"]
    assert after["deal"] == [(partner, True, amount)], after["deal"]
    assert not before["commission"] and len(after["commission"]) == 1


def assert_rewards_moved_to_the_new_version(before: dict, after: dict) -> None:
    """New rules version: the events earned on or after its effective date, computed under the old version by
    earlier runs, now carry the new version and its (higher) amounts."""
    old = {e: (amount, version) for e, amount, version in before["since_v2"]}
    new = {e: (amount, version) for e, amount, version in after["since_v2"] if e in old}
    assert len(old) >= 3 and set(new) == set(old), (old, new)
    assert {v for _, v in old.values()} == {"2024-01-01"}, old
    assert {v for _, v in new.values()} == {late.RULES_V2_FROM.isoformat()}, new
    assert all(new[e][0] > old[e][0] for e in old), (old, new)


def assert_the_tier_fell(before: dict, after: dict) -> None:
    """Late reversal: the partner's February events, earned as silver before the reversal landed, are now
    registered, and so is its current tier."""
    old = {e: (tier, amount) for e, tier, amount in before["february"]}
    new = {e: (tier, amount) for e, tier, amount in after["february"]}
    assert old and set(new) == set(old), (old, new)
    assert {t for t, _ in old.values()} == {"silver"} and {t for t, _ in new.values()} == {"registered"}
    assert all(new[e][1] < old[e][1] for e in old), (old, new)
    assert (before["current_tier"], after["current_tier"]) == ([("silver",)], [("registered",)])


SCENARIO_QUERIES = {
    "touches": (
        "select touch_id, account_key from marts.fct_touchpoints where touch_id = any(%s) order by 1",
        [f"clk:{c}" for c in late.VISITOR_CLICKS],
    ),
    "deal_credit": (
        "select partner_id, credit from marts.fct_attribution where deal_id = %s and model = 'payout' order by 1",
        late.CONVERTED_DEAL,
    ),
    "deal": (
        "select partner_id, is_won, attributed_revenue from marts.fct_attribution "
        "where deal_id = %s and model = 'payout' order by 1",
        late.UPDATED_DEAL,
    ),
    "commission": (
        "select amount from marts.fct_reward_entitlements where event_type = 'commission' and deal_id = %s",
        late.UPDATED_DEAL,
    ),
    "since_v2": (
        "select event_id, amount, rules_version from marts.fct_reward_entitlements where earned_at >= %s",
        late.RULES_V2_FROM,
    ),
    "february": (
        "select event_id, tier, amount from marts.fct_reward_entitlements "
        "where partner_id = %s and earned_at >= '2025-02-01'",
        late.TIER_PARTNER,
    ),
    "current_tier": ("select current_tier from marts.dim_partners where partner_id = %s", late.TIER_PARTNER),
}


def scenario_state(url: str) -> dict[str, list[tuple]]:
    return {name: sorted(query(url, sql, param), key=repr) for name, (sql, param) in SCENARIO_QUERIES.items()}


BATCH_DAY = dt.date(2025, 2, 1)  # the run that records the January payout batch


def test_daily_runs_backfill_and_rerun_give_the_same_marts(golden_dir, new_database, tmp_path):
    """Nightly runs, reruns, a dbt full refresh and a backfill give the same raw tables, marts and ledger, on the
    golden landing data with late data added (tests/late_data.py). The nightly runs:

    - 1-8 January: the golden days, one run each;
    - 9 January: a late conversion: clicks loaded on 1 and 4 January gain an account key and credit on a deal;
    - 10 January: a record update (an open deal re-delivered won, with a new amount), and a new rules version:
      the rules file gains a version effective from 8 January, so events that earlier runs computed under the
      old version move;
    - 11 January - 1 February as one catch-up run (it records the January payout batch), 2-5 February as
      another;
    - 6 February: a late reversal: a refund on a deal won in January drops its partner's February trailing
      revenue below silver, so events already earned as silver become registered.

    Each scenario asserts that rows computed before its day changed on its day: a model that ignored the late
    data would keep them and differ from the backfill and the full refresh. The ledger: the January batch,
    recorded by the run of 1 February, pays what the late conversion and the new rules version changed (checked
    on one line); the record update and the late reversal change only events payable in February, whose batch
    (run of 1 March) is outside the window, so for them the marts are the comparison.

    Then: reruns of an old day (the late conversion's) and of the last day change nothing, the views over the
    ledger survive, a dbt full refresh changes nothing, and the data_audit job catches a broken invariant. The
    backfill, into a new database with the final rules file, is one run per payout batch (1 January - 1 February,
    2-6 February): a single run over the whole range would record the January batch with February's data, not
    what the run of 1 February paid (see docs/decisions.md, Backfills are single runs)."""
    from orchestration.run import run_nightly

    scenario = late.write_scenario(golden_dir, tmp_path / "scenario")
    rules = tmp_path / "program_rules.yml"  # REFERRAL_RULES_FILE: edited between runs, as an operator would
    rules.write_text(scenario.rules_v1, encoding="utf-8")
    first, last = dt.date(2025, 1, 1), late.LATE_REVERSAL_DAY
    assert late.RECORD_UPDATE_DAY == late.RULES_CHANGE_DAY == late.LATE_CONVERSION_DAY + dt.timedelta(days=1)

    daily_url = new_database("daily")
    with pipeline_env(daily_url, scenario.landing, tmp_path / "x1", rules):
        run_days(first, late.LATE_CONVERSION_DAY - dt.timedelta(days=1))
        before = scenario_state(daily_url)
        run_nightly(late.LATE_CONVERSION_DAY, log_level="WARNING")
        after = scenario_state(daily_url)
        assert_old_clicks_gain_an_account_and_credit(daily_url, before, after)

        before = after
        rules.write_text(scenario.rules_v2, encoding="utf-8")
        run_nightly(late.RULES_CHANGE_DAY, log_level="WARNING")
        after = scenario_state(daily_url)
        assert_the_updated_deal_moved(before, after)
        assert_rewards_moved_to_the_new_version(before, after)

        run_nightly(late.RULES_CHANGE_DAY + dt.timedelta(days=1), BATCH_DAY, log_level="WARNING")
        # the January batch pays the late conversion's new credit at the new version's amount
        paid = query(
            daily_url,
            "select l.amount, e.amount, e.rules_version from payouts.ledger_lines as l "
            "join marts.fct_reward_entitlements as e using (event_id) "
            "where l.batch_id = 'batch-2025-01' and l.event_id = %s",
            f"qualified_bonus:{late.CONVERTED_DEAL}:{late.CLICK_PARTNER}",
        )
        assert len(paid) == 1 and paid[0][0] == paid[0][1] > 0, paid
        assert paid[0][2] == late.RULES_V2_FROM.isoformat(), paid

        run_nightly(BATCH_DAY + dt.timedelta(days=1), last - dt.timedelta(days=1), log_level="WARNING")
        before = scenario_state(daily_url)
        run_nightly(last, log_level="WARNING")
        after = scenario_state(daily_url)
        assert_the_tier_fell(before, after)

        daily = snapshot(daily_url)
        views = view_oids(daily_url)
        run_nightly(late.LATE_CONVERSION_DAY, log_level="WARNING")  # rerun an old day: nothing changes
        run_nightly(last, log_level="WARNING")  # rerun the last day
        assert snapshot(daily_url) == daily
        # the views over the ledger were created once and survive the nightly's rebuild of what they read
        assert view_oids(daily_url) == views and len(views) == 2
        rebuilt = dbt_build(daily_url, tmp_path / "full-refresh", last, full_refresh=True)
        assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
        assert snapshot(daily_url) == daily
        assert_audit_catches_what_the_nightly_leaves_out(daily_url)

    backfill_url = new_database("backfill")
    with pipeline_env(backfill_url, scenario.landing, tmp_path / "x2", rules):
        run_nightly(first, BATCH_DAY, log_level="WARNING")
        run_nightly(BATCH_DAY + dt.timedelta(days=1), last, log_level="WARNING")
        assert snapshot(backfill_url) == daily

    assert sum(len(v) for k, v in daily.items() if k.startswith("marts.")) > 0
    assert [b[0] for b in daily["payouts.batches"]] == ["batch-2025-01"], daily["payouts.batches"]
    assert daily["payouts.ledger_lines"]


def test_a_bad_file_fails_its_run_with_a_one_line_reason(golden_dir, new_database, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(golden_dir / "landing", landing)
    bad = landing / "crm" / "deals" / "dt=2025-01-04" / "deals-part-0000.csv.gz"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(gzip.compress(b"deal_id,stage\nD-1,qualified\n")[:20])  # truncated gzip
    url = new_database("badfile")
    env = {
        **os.environ,
        "REFERRAL_WAREHOUSE_URL": url,
        "REFERRAL_LANDING_URI": str(landing),
        "REFERRAL_EXPORT_URI": str(tmp_path / "exports"),
        "REFERRAL_RULES_FILE": str(golden_dir / "program_rules.yml"),
    }
    cli = str(Path(sys.executable).with_name("referral-pipeline"))
    proc = subprocess.run([cli, "run", "--date", "2025-01-04"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: nightly run 2025-01-04 failed")
    assert "deals-part-0000.csv.gz" in last
    # the other entities of that day loaded; the failed partition loaded nothing
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from raw.crm__deals").fetchone()[0] == 0
        assert (
            conn.execute(
                "select count(*) from raw.links__clicks where _partition_date = '2025-01-04'"
            ).fetchone()[0]
            > 0
        )


def test_run_refuses_a_day_that_has_not_ended(capsys):
    from referral_pipeline.cli import main

    today = dt.datetime.now(dt.UTC).date()
    assert main(["run", "--date", today.isoformat()]) == 1
    assert "not a complete day yet" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,needle",
    [
        (
            "program_currency: USD\nfree_mail_domains: [gmail.com, yahoo.com, outlook.com, hotmail.com, icloud.com, aol.com, proton.me, gmx.com]\nversions: []\n",
            "versions",
        ),
        ("program_currency: USD\n", "free_mail_domains"),
    ],
)
def test_a_bad_rules_file_fails_the_run_naming_the_field(golden_dir, new_database, tmp_path, content, needle):
    rules = tmp_path / "rules.yml"
    rules.write_text(content)
    url = new_database("badrules")
    env = {
        **os.environ,
        "REFERRAL_WAREHOUSE_URL": url,
        "REFERRAL_LANDING_URI": str(golden_dir / "landing"),
        "REFERRAL_EXPORT_URI": str(tmp_path / "exports"),
        "REFERRAL_RULES_FILE": str(rules),
    }
    cli = str(Path(sys.executable).with_name("referral-pipeline"))
    proc = subprocess.run([cli, "run", "--date", "2025-01-02"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert needle in proc.stderr.strip().splitlines()[-1]


def test_a_missing_fx_rate_stops_publishing_with_an_actionable_message(golden_dir, new_database, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(golden_dir / "landing", landing)
    shutil.rmtree(landing / "finance" / "fx_rates")
    exports = tmp_path / "exports"
    env = {
        **os.environ,
        "REFERRAL_WAREHOUSE_URL": new_database("nofx"),
        "REFERRAL_LANDING_URI": str(landing),
        "REFERRAL_EXPORT_URI": str(exports),
        "REFERRAL_RULES_FILE": str(golden_dir / "program_rules.yml"),
    }
    cli = str(Path(sys.executable).with_name("referral-pipeline"))
    proc = subprocess.run(
        [cli, "backfill", "--start", "2025-01-01", "--end", "2025-02-01"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "no fx rate for EUR on or before" in last and "load finance/fx_rates" in last, last
    assert not exports.exists() or not any(exports.rglob("manifest.json"))
