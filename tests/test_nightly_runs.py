"""Nightly runs through the real Dagster job: day-by-day runs, one backfill and a full refresh give the same
raw tables, marts and ledger, a rerun changes nothing, and a failing partition fails the run with a one-line
reason and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from golden import dbt_build, pipeline_env

START, END = dt.date(2025, 1, 1), dt.date(2025, 1, 8)
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
    """Every table of the schemas, all rows sorted, without load-time columns."""
    out: dict[str, list[tuple]] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
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


def run_days(days):
    from orchestration.run import run_nightly

    for day in days:
        run_nightly(day, log_level="WARNING")


def test_daily_runs_backfill_and_rerun_give_the_same_marts(golden_dir, new_database, tmp_path):
    from orchestration.run import run_nightly

    rules = golden_dir / "program_rules.yml"
    days = [START + dt.timedelta(days=i) for i in range((END - START).days + 1)]

    daily_url = new_database("daily")
    with pipeline_env(daily_url, golden_dir / "landing", tmp_path / "x1", rules):
        run_days(days)
        daily = snapshot(daily_url)
        views = view_oids(daily_url)
        run_nightly(dt.date(2025, 1, 7), log_level="WARNING")  # rerun an old day: nothing changes
        run_nightly(END, log_level="WARNING")  # rerun the last day
        assert snapshot(daily_url) == daily
        # the views over the ledger were created once and survive the nightly's rebuild of what they read
        assert view_oids(daily_url) == views and len(views) == 2
        rebuilt = dbt_build(daily_url, tmp_path / "full-refresh", END, full_refresh=True)
        assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
        assert snapshot(daily_url) == daily
        assert_audit_catches_what_the_nightly_leaves_out(daily_url)

    backfill_url = new_database("backfill")
    with pipeline_env(backfill_url, golden_dir / "landing", tmp_path / "x2", rules):
        run_nightly(START, END, log_level="WARNING")
        assert snapshot(backfill_url) == daily

    assert sum(len(v) for k, v in daily.items() if k.startswith("marts.")) > 0


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
