"""Reward models (SPEC section 7) on the golden example: the landing zone loaded day by day, the rules written,
one dbt build, and marts.fct_reward_events compared with the independent expected output."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from referral_pipeline.rules import parse_rules, write_rules

from golden import dbt_build, load_days

FIRST_DAY, LAST_DAY = dt.date(2025, 1, 1), dt.date(2025, 3, 1)
COLUMNS = (
    "event_id",
    "event_type",
    "partner_id",
    "deal_id",
    "referral_id",
    "amount",
    "earned_at",
    "payable_at",
    "tier",
    "rules_version",
)


def _load_golden(url: str, golden_dir: Path, rules_text: str) -> None:
    load_days(url, golden_dir / "landing", FIRST_DAY, LAST_DAY)
    with psycopg.connect(url) as conn:
        write_rules(conn, parse_rules(rules_text, "program_rules.yml"))


def _dbt_build(url: str, tmp_path: Path, run_date: dt.date) -> None:
    proc = dbt_build(url, tmp_path, run_date)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def _ts(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def _reward_events(url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"select {', '.join(COLUMNS)} from marts.fct_reward_events").fetchall()
    out = {}
    for row in rows:
        rec = dict(zip(COLUMNS, row, strict=True))
        assert isinstance(rec["amount"], Decimal)
        rec["amount"] = f"{rec['amount']:.2f}"
        rec["earned_at"], rec["payable_at"] = _ts(rec["earned_at"]), _ts(rec["payable_at"])
        out[rec["event_id"]] = {k: "" if v is None else str(v) for k, v in rec.items()}
    return out


def _expected(golden_dir: Path) -> dict[str, dict[str, str]]:
    with open(golden_dir / "expected_reward_events.csv", newline="", encoding="utf-8") as f:
        return {r["event_id"]: r for r in csv.DictReader(f)}


def _assert_same(actual: dict[str, dict[str, str]], expected: dict[str, dict[str, str]]) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = [
        (e, {k: (actual[e][k], expected[e][k]) for k in COLUMNS if actual[e][k] != expected[e][k]})
        for e in sorted(set(actual) & set(expected))
    ]
    differ = [d for d in differ if d[1]]
    assert not (missing or extra or differ), (
        f"missing={missing}\nextra={extra}\ndiffer (actual, expected)={differ}"
    )


@pytest.fixture(scope="module")
def golden_warehouse(new_database, golden_dir, tmp_path_factory) -> str:
    url = new_database("rewards")
    from referral_pipeline.warehouse import ensure_schema

    ensure_schema(url)
    _load_golden(url, golden_dir, (golden_dir / "program_rules.yml").read_text(encoding="utf-8"))
    _dbt_build(url, tmp_path_factory.mktemp("dbt"), LAST_DAY)
    return url


def test_reward_events_equal_golden(golden_warehouse, golden_dir):
    _assert_same(_reward_events(golden_warehouse), _expected(golden_dir))


def test_dim_partners_current_tier(golden_warehouse):
    # As of 2025-03-01, the trailing window is [2024-03-01, 2025-03-01): PTR-0001 gold, PTR-0002 silver
    # (the README's tier cases), everyone else registered.
    with psycopg.connect(golden_warehouse) as conn:
        tiers = dict(conn.execute("select partner_id, current_tier from marts.dim_partners").fetchall())
    assert tiers["PTR-0001"] == "gold"
    assert tiers["PTR-0002"] == "silver"
    assert {t for p, t in tiers.items() if p not in ("PTR-0001", "PTR-0002")} == {"registered"}


def test_marts_agree_with_reward_events(golden_warehouse):
    with psycopg.connect(golden_warehouse) as conn:
        monthly = conn.execute(
            "select sum(rewards_earned), sum(reward_events) from marts.fct_partner_performance_monthly"
        ).fetchone()
        events = conn.execute("select sum(amount), count(*) from marts.fct_reward_events").fetchone()
        bonuses = conn.execute(
            "select count(*) filter (where earned_referral_bonus), count(*) from marts.fct_referrals"
        ).fetchone()
        n_bonus = conn.execute(
            "select count(*) from marts.fct_reward_events where event_type = 'referral_bonus'"
        ).fetchone()[0]
    assert monthly == events
    assert bonuses[0] == n_bonus
    assert bonuses[1] == 43


def test_a_later_rules_version_judges_only_later_instants(new_database, golden_dir, tmp_path):
    """A version effective 2025-02-01 with a cap, a longer commission hold and another tier table: events
    earned before February are judged as before; February events take every parameter from the new version."""
    base = (golden_dir / "program_rules.yml").read_text(encoding="utf-8")
    new_version = base[base.index("  - effective_from: 2024-01-01") :]
    new_version = (
        new_version.replace("effective_from: 2024-01-01", "effective_from: 2025-02-01")
        .replace("commission_cap_per_deal: null", "commission_cap_per_deal: 1000")
        .replace("commission: 30}", "commission: 10}")
        .replace("referral_bonus: 100, qualified_bonus: 500", "referral_bonus: 111, qualified_bonus: 555")
    )
    url = new_database("rewards")
    from referral_pipeline.warehouse import ensure_schema

    ensure_schema(url)
    _load_golden(url, golden_dir, base + new_version)
    _dbt_build(url, tmp_path, LAST_DAY)
    actual, expected = _reward_events(url), _expected(golden_dir)
    assert set(actual) == set(expected)
    for event_id, exp in expected.items():
        want = dict(exp)
        if exp["earned_at"] >= "2025-02-01":
            want["rules_version"] = "2025-02-01"
            if exp["event_type"] == "commission":
                want["amount"] = f"{min(Decimal(exp['amount']), Decimal(1000)):.2f}"
                earned = dt.datetime.fromisoformat(exp["earned_at"])
                want["payable_at"] = _ts(earned + dt.timedelta(days=10))
            elif exp["tier"] == "gold":
                factor = Decimal(111) / 100 if exp["event_type"] == "referral_bonus" else Decimal(555) / 500
                want["amount"] = f"{Decimal(exp['amount']) * factor:.2f}"
        assert actual[event_id] == want, event_id
