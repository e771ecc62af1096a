"""Staging, identity, touchpoint and attribution models (docs/rules.md, Touchpoints to Attribution) against the
golden example: the landing zone loaded day by day into a fresh warehouse with an incremental `dbt build` every
week (see _builds_on), then
marts.fct_touchpoints and marts.fct_attribution compared with the independent expected outputs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from referral_pipeline.config import DBT_PROJECT_DIR
from referral_pipeline.dbt_cli import build_args, dbt_env
from referral_pipeline.entities import ENTITIES
from referral_pipeline.landing import load_partition
from referral_pipeline.rules import parse_rules, write_rules
from referral_pipeline.warehouse import ensure_schema

from golden import assert_same_rows, query_rows, read_csv, scoped_env

FIRST_DAY, LAST_DAY = dt.date(2025, 1, 1), dt.date(2025, 3, 1)
# The attribution side of the project and every test attached to it (the rewards models are tested elsewhere).
SELECTION = (
    "path:models/staging +fct_touchpoints +fct_attribution +fct_data_quality +int_attribution__payout_credits"
)
TP_COLUMNS = ("touch_id", "touch_type", "partner_id", "account_key", "occurred_at", "exclusion_reason")
ATTR_COLUMNS = ("deal_id", "partner_id", "model", "credit", "touch_count", "is_won")


def _dbt_build(url: str, work: Path, run_date: dt.date, *, unit_tests: bool = True) -> list[str]:
    """`dbt build` of SELECTION, in-process (60 runs: no interpreter start-up each time). Returns the problems:
    one line per node that errored or failed (empty when the build succeeded)."""
    from dbt.cli.main import dbtRunner

    env = {
        **dbt_env(url, run_date),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
    }
    # cautious: only the tests whose every parent is selected (not the tests of other models on these ones).
    args = [
        *build_args(select=SELECTION, unit_tests=unit_tests),
        "--indirect-selection",
        "cautious",
        "--threads",
        "4",
        "--quiet",
    ]
    args += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    with scoped_env(env):
        res = dbtRunner().invoke(args)
    if res.exception is not None:
        return [f"dbt did not run: {res.exception}"]
    problems = [
        f"{r.node.name}: {r.status}: {r.message}" for r in res.result if str(r.status) in ("error", "fail")
    ]
    return problems or ([] if res.success else ["dbt build failed"])


def _assert_ok(problems: list[str], what: str) -> None:
    assert not problems, f"{what}:\n" + "\n".join(problems)


def _write_rules(url: str, text: str) -> None:
    with psycopg.connect(url) as conn:
        write_rules(conn, parse_rules(text, "program_rules.yml"))


def _load_day(url: str, golden_dir: Path, day: dt.date) -> None:
    for entity in ENTITIES:
        load_partition(
            url, entity, day, str(golden_dir / "landing"), ip_hash_key="test-key", log=lambda _m: None
        )


@pytest.fixture(scope="module")
def golden_warehouse(new_database, golden_dir, tmp_path_factory) -> str:
    url = new_database("attr")
    ensure_schema(url)
    _write_rules(url, (golden_dir / "program_rules.yml").read_text(encoding="utf-8"))
    work = tmp_path_factory.mktemp("dbt")
    day = FIRST_DAY
    while day <= LAST_DAY:
        _load_day(url, golden_dir, day)
        if _builds_on(day):
            # Unit tests do not depend on the data: run them once, with the last day's build.
            _assert_ok(_dbt_build(url, work, day, unit_tests=day == LAST_DAY), f"dbt build for {day}")
        day += dt.timedelta(days=1)
    return url


def _builds_on(day: dt.date) -> bool:
    """A build after every week of loads, at each month's end and on the last day: a dozen incremental builds,
    each over several new partitions (late records cross builds). One build after every single day gives the
    same marts; test_nightly_runs.py proves that equivalence on the real job, so it is not repeated here."""
    return (day - FIRST_DAY).days % 7 == 6 or (day + dt.timedelta(days=1)).day == 1 or day == LAST_DAY


@pytest.mark.slow
def test_touchpoints_equal_golden(golden_warehouse, golden_dir):
    with psycopg.connect(golden_warehouse) as conn:
        actual = query_rows(conn, f"select {', '.join(TP_COLUMNS)} from marts.fct_touchpoints")
    expected = read_csv(golden_dir / "expected_touchpoints.csv")
    assert len(actual) == len(expected) == 1630
    assert_same_rows(actual, expected, ("touch_id",), TP_COLUMNS, what="fct_touchpoints")


@pytest.mark.slow
def test_attribution_equal_golden(golden_warehouse, golden_dir):
    with psycopg.connect(golden_warehouse) as conn:
        actual = query_rows(conn, f"select {', '.join(ATTR_COLUMNS)} from marts.fct_attribution")
    expected = read_csv(golden_dir / "expected_attribution.csv")
    assert_same_rows(
        actual,
        expected,
        ("deal_id", "partner_id", "model"),
        ATTR_COLUMNS,
        what="fct_attribution",
        decimals={"credit": Decimal("1e-9")},
    )


@pytest.mark.slow
def test_attributed_revenue_is_credit_times_commission_base(golden_warehouse, golden_dir):
    # attributed_revenue is informational in the golden file (6 decimals): it must agree to 1e-6.
    with psycopg.connect(golden_warehouse) as conn:
        actual = query_rows(
            conn, "select deal_id, partner_id, model, attributed_revenue from marts.fct_attribution"
        )
    expected = read_csv(golden_dir / "expected_attribution.csv")
    assert_same_rows(
        actual,
        expected,
        ("deal_id", "partner_id", "model"),
        ("attributed_revenue",),
        what="fct_attribution.attributed_revenue",
        decimals={"attributed_revenue": Decimal("0.000001")},
    )


@pytest.mark.slow
def test_data_quality_counts(golden_warehouse, golden_dir):
    with psycopg.connect(golden_warehouse) as conn:
        rows = conn.execute("select check_name, entity, issue_count from marts.fct_data_quality").fetchall()
    counts = {(c, e): n for c, e, n in rows}
    rejected = Counter(
        r["file"].split("/dt=")[0] for r in read_csv(golden_dir / "expected_rejected_rows.csv")
    )
    for entity in ENTITIES:
        assert counts[("rejected_rows", entity.path)] == rejected.get(entity.path, 0), entity.path
    # README: duplicates of clicks, stage history, a reversal, activities and conversions.
    for path in ("links/clicks", "crm/deal_stage_history", "marketing/activities", "links/conversions"):
        assert counts[("duplicate_events", path)] > 0, path
    assert counts[("duplicate_events", "crm/deal_reversals")] == 1
    # README: "a deal with no account key"; unknown codes and partners; visitors who never convert.
    assert counts[("unattributable_deals", "crm/deals")] == 1
    assert counts[("deals_missing_fx_rate", "crm/deals")] == 0
    assert counts[("unresolved_partner_codes", "marketing/activities")] > 0
    assert counts[("unknown_partners", "marketing/activities")] > 0
    assert counts[("unresolved_visitors", "links/clicks")] > 0


def _insert(conn: psycopg.Connection, table: str, row: dict) -> None:
    lineage = {
        "_partition_date": dt.date(2025, 1, 4),
        "_source_file": f"{table}/dt=2025-01-04/part.csv",
        "_line_number": 2,
        "_load_batch_id": "test",
        "_loaded_at": dt.datetime(2025, 1, 4, tzinfo=dt.UTC),
    }
    row = {**row, **lineage}
    cols = ", ".join(row)
    conn.execute(
        f"insert into raw.{table} ({cols}) values ({', '.join(['%s'] * len(row))})", list(row.values())
    )


def _deal(deal_id: str, currency: str, **kw) -> dict:
    return {
        "deal_id": deal_id,
        "company_domain": "acme.com",
        "deal_type": "new_business",
        "stage": "closed_won",
        "amount": Decimal("1000.00"),
        "currency": currency,
        "created_at": dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
        "closed_at": dt.datetime(2025, 1, 4, 12, tzinfo=dt.UTC),
        "is_won": True,
        "updated_at": dt.datetime(2025, 1, 4, 12, tzinfo=dt.UTC),
        "is_deleted": False,
        **kw,
    }


def test_missing_fx_rate_stops_the_build_with_an_actionable_message(warehouse_url, golden_dir, tmp_path):
    _write_rules(warehouse_url, (golden_dir / "program_rules.yml").read_text(encoding="utf-8"))
    with psycopg.connect(warehouse_url) as conn:
        _insert(conn, "crm__deals", _deal("D-1", "EUR"))
        _insert(conn, "crm__deals", _deal("D-2", "USD"))
        _insert(
            conn,
            "finance__fx_rates",
            {"rate_date": dt.date(2025, 1, 5), "currency": "EUR", "rate": Decimal("0.9")},
        )
    problems = _dbt_build(warehouse_url, tmp_path, dt.date(2025, 1, 5), unit_tests=False)
    assert [p for p in problems if p.startswith("attribution_deals_have_fx_rates: fail")] == problems, (
        problems
    )
    with psycopg.connect(warehouse_url) as conn:
        messages = [
            r[0]
            for r in conn.execute("select message from data_quality_failures.attribution_deals_have_fx_rates")
        ]
    assert messages == ["deal D-1: no fx rate for EUR on or before 2025-01-04: load finance/fx_rates"]

    # The rate arrives: the build passes and the won deal converts at the latest rate on or before 2025-01-04.
    with psycopg.connect(warehouse_url) as conn:
        _insert(
            conn,
            "finance__fx_rates",
            {"rate_date": dt.date(2025, 1, 3), "currency": "EUR", "rate": Decimal("0.8")},
        )
    _assert_ok(
        _dbt_build(warehouse_url, tmp_path, dt.date(2025, 1, 5), unit_tests=False), "dbt build with the rate"
    )
    with psycopg.connect(warehouse_url) as conn:
        row = conn.execute(
            "select fx_rate_date, fx_rate, commission_base from intermediate.int_deals__enriched where deal_id = 'D-1'"
        ).fetchone()
    assert row == (dt.date(2025, 1, 3), Decimal("0.8"), Decimal("1250"))


def test_override_replaces_payout_credit_even_without_path(new_database, golden_dir, tmp_path):
    url = new_database("attr")
    ensure_schema(url)
    _write_rules(url, (golden_dir / "program_rules.yml").read_text(encoding="utf-8"))
    day = FIRST_DAY
    while day <= LAST_DAY:
        _load_day(url, golden_dir, day)
        day += dt.timedelta(days=1)
    with psycopg.connect(url) as conn:
        for set_id, deal, partner, credit in (
            (1, "D-00005", "PTR-0001", "1"),  # superseded by set 2
            (2, "D-00005", "PTR-0004", "0.25"),
            (2, "D-00005", "PTR-0007", "0.75"),  # a partner off the path
            (3, "D-00009", "PTR-0002", "1"),  # D-00009 has an empty path
        ):
            conn.execute(
                "insert into controls.attribution_overrides (override_set_id, deal_id, partner_id, credit,"
                " created_by, reason) values (%s, %s, %s, %s, 'pm', 'test')",
                (set_id, deal, partner, Decimal(credit)),
            )
    _assert_ok(_dbt_build(url, tmp_path, LAST_DAY, unit_tests=False), "dbt build")
    with psycopg.connect(url) as conn:
        payout = conn.execute(
            "select deal_id, partner_id, credit, touch_count, credit_source from marts.fct_attribution"
            " where model = 'payout' and deal_id in ('D-00005', 'D-00009') order by 1, 2"
        ).fetchall()
        models = conn.execute(
            "select count(*) from marts.fct_attribution where deal_id = 'D-00005' and model <> 'payout'"
        ).fetchone()[0]
    assert payout == [
        ("D-00005", "PTR-0004", Decimal("0.25"), 1, "override"),
        ("D-00005", "PTR-0007", Decimal("0.75"), 0, "override"),
        ("D-00009", "PTR-0002", Decimal("1"), 0, "override"),
    ]
    assert models == 15  # the five models still show the path's three partners
