"""Pure functions behind the CLI and the runs: dbt arguments, backfill ranges, control input parsing."""

import datetime as dt
from decimal import Decimal

import pytest

from referral_pipeline.cli import build_parser
from referral_pipeline.controls import ControlError, parse_credits
from referral_pipeline.dbt_cli import build_args, dbt_env, pg_options
from referral_pipeline.demo import month_ranges


def test_build_args_leave_the_run_date_to_the_environment():
    # no --vars: a var that changes every run would defeat dbt's partial parsing
    assert build_args() == ["build", "--exclude-resource-type", "unit_test"]
    assert "--full-refresh" in build_args(full_refresh=True)
    assert build_args(select="marts")[1:3] == ["--select", "marts"]
    assert "unit_test" not in build_args(unit_tests=True)
    assert dbt_env("postgresql://u@h/d", dt.date(2025, 2, 1))["REFERRAL_RUN_DATE"] == "2025-02-01"
    assert dbt_env("postgresql://u@h/d")["REFERRAL_RUN_DATE"] == ""


def test_dbt_env_pins_the_real_schemas_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("REFERRAL_DBT_SCHEMA_PREFIX", "sim_x_")
    monkeypatch.setenv("REFERRAL_DBT_RULES_SCHEMA", "sim_x_rules")
    env = dbt_env("postgresql://u@h/d")
    assert env["REFERRAL_DBT_SCHEMA_PREFIX"] == "" and env["REFERRAL_DBT_RULES_SCHEMA"] == "rules"


def test_dbt_env_comes_from_the_one_warehouse_url(monkeypatch):
    monkeypatch.delenv("PGOPTIONS", raising=False)
    env = dbt_env("postgresql://alice:s3cret@db.example:6543/wh")
    assert env == {
        "REFERRAL_DBT_HOST": "db.example",
        "REFERRAL_DBT_PORT": "6543",
        "REFERRAL_DBT_USER": "alice",
        "REFERRAL_DBT_PASSWORD": "s3cret",
        "REFERRAL_DBT_DBNAME": "wh",
        "REFERRAL_RUN_DATE": "",
        "PGOPTIONS": "-c jit=off",
        "REFERRAL_DBT_SCHEMA_PREFIX": "",
        "REFERRAL_DBT_RULES_SCHEMA": "rules",
    }
    socket = dbt_env("postgresql://postgres@/referral?host=/tmp/x/data")
    assert socket["REFERRAL_DBT_HOST"] == "/tmp/x/data" and socket["REFERRAL_DBT_DBNAME"] == "referral"


def test_dbt_sessions_run_without_jit_unless_the_user_sets_it(monkeypatch):
    assert pg_options(None) == "-c jit=off"
    assert pg_options("-c statement_timeout=0") == "-c statement_timeout=0 -c jit=off"
    assert pg_options("-c jit=on") == "-c jit=on"
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=64MB")
    assert dbt_env("postgresql://u@h/d")["PGOPTIONS"] == "-c work_mem=64MB -c jit=off"


def test_month_ranges_end_on_the_first_of_each_month():
    assert month_ranges(dt.date(2025, 1, 1), dt.date(2025, 3, 1)) == [
        (dt.date(2025, 1, 1), dt.date(2025, 2, 1)),
        (dt.date(2025, 2, 2), dt.date(2025, 3, 1)),
    ]
    assert month_ranges(dt.date(2025, 1, 15), dt.date(2025, 1, 20)) == [
        (dt.date(2025, 1, 15), dt.date(2025, 1, 20))
    ]
    ranges = month_ranges(dt.date(2024, 12, 20), dt.date(2025, 3, 10))
    days = sum((hi - lo).days + 1 for lo, hi in ranges)
    assert days == (dt.date(2025, 3, 10) - dt.date(2024, 12, 20)).days + 1
    assert [hi for _, hi in ranges][:-1] == [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]


def test_parse_credits_accepts_exact_sums_only():
    got = parse_credits(["PTR-1=0.6", "PTR-2=0.4"])
    assert [(c.partner_id, c.credit) for c in got] == [("PTR-1", Decimal("0.6")), ("PTR-2", Decimal("0.4"))]
    assert parse_credits(["PTR-1=1"])[0].credit == 1
    for bad, msg in [
        (["PTR-1=0.5", "PTR-2=0.4"], "sum to exactly 1"),
        (["PTR-1=0.3333333", "PTR-2=0.3333333", "PTR-3=0.3333334"], None),
        (["PTR-1=1.2", "PTR-2=-0.2"], "> 0"),
        (["PTR-1=0.5", "PTR-1=0.5"], "twice"),
        (["PTR-1"], "PARTNER_ID=SHARE"),
        (["PTR-1=abc"], "not a decimal"),
        ([], "at least one"),
    ]:
        if msg is None:
            assert sum(c.credit for c in parse_credits(bad)) == 1
            continue
        with pytest.raises(ControlError, match=msg):
            parse_credits(bad)


def test_cli_refuses_bad_dates_and_missing_audit_fields(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--date", "2025-02-30"])
    assert "expected a date YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["approve", "commission:D-1:PTR-1", "--by", "ann"])
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["dispute", "open", "--deal", "D-1", "--referral", "R-1", "--by", "a", "--reason", "b"]
        )
