"""The ledger marts (SPEC sections 9 and 10) on the real pipeline: the golden landing days 2025-01-01..2025-02-01,
the rules, one dbt build for 2025-02-01, then the payout step. marts.fct_payout_ledger and the statuses of
marts.fct_reward_events are views, so they follow the ledger without another dbt run: they are read after each
payout step (nothing published, batch 2025-01 published, batch 2025-02 recorded, batch 2025-02 published)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

import payout_exports
from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import ensure_schema

from golden import dbt_build, load_days, query_rows, read_csv

FIRST_DAY, RUN_DAY = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
JAN_CUTOFF = "2025-01-31T23:59:59.999999Z"
FEB_CUTOFF = "2025-02-28T23:59:59.999999Z"
LINE_COLUMNS = (
    "batch_id",
    "period",
    "event_id",
    "event_type",
    "partner_id",
    "deal_id",
    "referral_id",
    "earned_at",
    "payable_at",
    "entitlement",
    "previously_paid",
    "amount",
)
LEDGER_SQL = f"""
select {", ".join(LINE_COLUMNS)}, cutoff, payout_currency, fx_rate::text as fx_rate
from marts.fct_payout_ledger
"""
STATUS_SQL = """
select event_id, amount, payable_at, paid_to_date, status, hold_reasons, latest_batch_id
from marts.fct_reward_events
"""


def _money(rows: list[dict[str, str]], *columns: str) -> list[dict[str, str]]:
    """Amounts with exactly two decimals, as in the published files."""
    return [{**r, **{c: f"{Decimal(r[c]):.2f}" for c in columns}} for r in rows]


def _snapshot(url: str) -> dict[str, list[dict[str, str]]]:
    with psycopg.connect(url) as conn:
        ledger = _money(query_rows(conn, LEDGER_SQL), "entitlement", "previously_paid", "amount")
        events = _money(query_rows(conn, STATUS_SQL), "amount", "paid_to_date")
    return {"ledger": ledger, "events": events}


def _dbt_build(url: str, tmp: Path) -> None:
    proc = dbt_build(url, tmp, RUN_DAY)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def pipeline(new_database, golden_dir, tmp_path_factory) -> dict:
    """Runs the scenario once; returns the marts as read after each payout step, and the export folder."""
    tmp = tmp_path_factory.mktemp("ledger")
    url = new_database("ledger")
    ensure_schema(url)
    load_days(url, golden_dir / "landing", FIRST_DAY, RUN_DAY)
    with psycopg.connect(url) as conn:
        write_rules(conn, load_rules(golden_dir / "program_rules.yml"))
    _dbt_build(url, tmp)
    export = tmp / "export"
    quiet = {"log": lambda _m: None}

    states = {"built": _snapshot(url)}
    published = payout_exports.publish_due(url, RUN_DAY, str(export), code_version="test", **quiet)
    assert [b.period for b in published] == ["2025-01"]
    states["jan_published"] = _snapshot(url)
    # The run of 2025-03-01 without new data: period 2025-02 recorded first, published after.
    recorded = payout_exports.record_due_batches(url, dt.date(2025, 3, 1), code_version="test", **quiet)
    assert [b.period for b in recorded] == ["2025-02"]
    states["feb_recorded"] = _snapshot(url)
    assert payout_exports.publish_recorded_batches(url, str(export), **quiet) == ["batch-2025-02"]
    states["feb_published"] = _snapshot(url)
    return {"states": states, "export": export}


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _published(export: Path, period: str, name: str) -> list[dict[str, str]]:
    return read_csv(export / f"period={period}" / name)


def _by_event(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["event_id"]: r for r in rows}


def _lines(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(({c: r[c] for c in LINE_COLUMNS} for r in rows), key=lambda r: (r["period"], r["event_id"]))


def test_nothing_published_means_an_empty_ledger_and_every_event_in_hold(pipeline):
    built = pipeline["states"]["built"]
    assert built["ledger"] == []
    assert len(built["events"]) == 47
    assert {(e["status"], e["paid_to_date"], e["latest_batch_id"]) for e in built["events"]} == {
        ("in_hold", "0.00", "")
    }


def test_ledger_mart_is_the_published_payout_lines(pipeline, golden_dir):
    export, states = pipeline["export"], pipeline["states"]
    jan_file = _published(export, "2025-01", "payout_lines.csv")
    assert len(jan_file) == 31
    assert _lines(states["jan_published"]["ledger"]) == _lines(jan_file)
    # The independent expected lines of period 2025-01 (batch ids there are placeholders: compared by period).
    golden_jan = [r for r in read_csv(golden_dir / "expected_payout_lines.csv") if r["period"] == "2025-01"]
    no_id = [c for c in LINE_COLUMNS if c != "batch_id"]
    assert sorted(tuple(r[c] for c in no_id) for r in states["jan_published"]["ledger"]) == sorted(
        tuple(r[c] for c in no_id) for r in golden_jan
    )
    assert {r["cutoff"] for r in states["jan_published"]["ledger"]} == {JAN_CUTOFF}
    # A recorded batch is not in the ledger mart until it is published.
    assert states["feb_recorded"]["ledger"] == states["jan_published"]["ledger"]
    feb_file = _published(export, "2025-02", "payout_lines.csv")
    assert feb_file
    assert _lines(states["feb_published"]["ledger"]) == _lines(jan_file + feb_file)


def test_ledger_lines_carry_the_partner_payout_currency_and_rate(pipeline):
    export, ledger = pipeline["export"], pipeline["states"]["feb_published"]["ledger"]
    payouts = {
        (r["batch_id"], r["partner_id"]): (r["payout_currency"], r["fx_rate"])
        for period in ("2025-01", "2025-02")
        for r in _published(export, period, "payouts.csv")
    }
    assert {(r["batch_id"], r["partner_id"]): (r["payout_currency"], r["fx_rate"]) for r in ledger} == payouts
    # The golden partners are paid in USD, EUR and GBP.
    assert {c for c, _ in payouts.values()} == {"USD", "EUR", "GBP"}


def test_statuses_after_the_first_batch(pipeline, golden_dir):
    events = _by_event(pipeline["states"]["jan_published"]["events"])
    paid = _by_event(
        r for r in read_csv(golden_dir / "expected_payout_lines.csv") if r["period"] == "2025-01"
    )
    held = _by_event(
        r for r in read_csv(golden_dir / "expected_review_queue.csv") if r["period"] == "2025-01"
    )
    assert set(paid) | set(held) <= set(events)
    for event_id, e in events.items():
        if event_id in paid:
            want = ("paid", paid[event_id]["amount"], "", "batch-2025-01")
        elif event_id in held:
            want = ("held", "0.00", held[event_id]["reasons"], "batch-2025-01")
        else:
            # Not yet considered by any published batch: payable after the cutoff of batch 2025-01.
            assert _at(e["payable_at"]) > _at(JAN_CUTOFF), event_id
            want = ("in_hold", "0.00", "", "")
        assert (e["status"], e["paid_to_date"], e["hold_reasons"], e["latest_batch_id"]) == want, event_id
    # The README's cases: PTR-0004 lost its tax form; January's commissions wait out their 30-day hold.
    assert {i for i, e in events.items() if e["status"] == "held"} == {
        "qualified_bonus:D-00006:PTR-0004",
        "qualified_bonus:D-00014:PTR-0004",
        "referral_bonus:REF-00015",
    }
    assert {e["hold_reasons"] for e in events.values() if e["status"] == "held"} == {"missing_tax_form"}
    assert events["commission:D-00001:PTR-0001"]["status"] == "in_hold"
    assert events["commission:D-00001:PTR-0001"]["payable_at"] == "2025-02-18T09:02:13Z"
    assert sum(Decimal(e["paid_to_date"]) for e in events.values()) == Decimal("4133.34")


def test_statuses_follow_the_ledger_without_a_dbt_run(pipeline):
    states = pipeline["states"]
    # Recording alone changes nothing: statuses are as of the latest published batch.
    assert states["feb_recorded"]["events"] == states["jan_published"]["events"]
    events = _by_event(states["feb_published"]["events"])
    commission = events["commission:D-00001:PTR-0001"]
    assert (commission["status"], commission["paid_to_date"], commission["latest_batch_id"]) == (
        "paid",
        "18000.00",
        "batch-2025-02",
    )
    held = events["referral_bonus:REF-00015"]
    assert (held["status"], held["hold_reasons"], held["latest_batch_id"]) == (
        "held",
        "missing_tax_form",
        "batch-2025-02",
    )
    # Deal D-00006's commissions become payable on 2025-03-01: after the cutoff of batch 2025-02.
    d6 = {i: e for i, e in events.items() if i.startswith("commission:D-00006:")}
    assert len(d6) == 4
    assert {(e["status"], e["latest_batch_id"]) for e in d6.values()} == {("in_hold", "")}
    # Without deferrals or adjustments in this data, every event payable by the cutoff is paid or held.
    for event_id, e in events.items():
        if _at(e["payable_at"]) <= _at(FEB_CUTOFF):
            assert e["status"] in ("paid", "held"), event_id
    ledger_paid = sum(Decimal(r["amount"]) for r in states["feb_published"]["ledger"])
    assert sum(Decimal(e["paid_to_date"]) for e in events.values()) == ledger_paid
